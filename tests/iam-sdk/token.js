// Obtains an X-Auth-Token from roomrec with Huawei Cloud's own IAM SDK for Node.js, unmodified:
// its v3 client's keystoneCreateUserTokenByPassword, pointed at the local gateway with
// withEndpoint (plain http works: the SDK takes the endpoint's scheme as given). The SDK signs
// the request with its AK/SK (Authorization: SDK-HMAC-SHA256 ...), which roomrec ignores on this
// route; the key id and secret travel as IAM's user name and password.
//
// Usage: ROOMREC_HTTP_URL=http://127.0.0.1:PORT KEY_ID=... SECRET=... node token.js
// Prints {"token": ..., "expires_at": ..., "issued_at": ..., "methods": [...]} on success.
'use strict';

const { GlobalCredentials } = require('@huaweicloud/huaweicloud-sdk-core');
// The package's main file also loads its v5 client, whose public-api.js requires a module that
// is not in the package ('./GlobalCredentials,BasicCredentials', 3.1.172, the only release);
// the v3 client's own entry point loads fine.
const iam = require('@huaweicloud/huaweicloud-sdk-iam/v3/public-api');

async function main() {
  const { ROOMREC_HTTP_URL: endpoint, KEY_ID: keyId, SECRET: secret } = process.env;
  if (!endpoint || !keyId || !secret) {
    throw new Error('set ROOMREC_HTTP_URL, KEY_ID and SECRET');
  }
  const client = iam.IamClient.newBuilder()
    .withCredential(new GlobalCredentials().withAk(keyId).withSk(secret))
    .withEndpoint(endpoint)
    .build();
  const user = new iam.PwdPasswordUser()
    .withName(keyId)
    .withPassword(secret)
    .withDomain(new iam.PwdPasswordUserDomain().withName('domainname'));
  const identity = new iam.PwdIdentity()
    .withMethods(['password'])
    .withPassword(new iam.PwdPassword().withUser(user));
  const scope = new iam.AuthScope().withDomain(new iam.AuthScopeDomain().withName('domainname'));
  const request = new iam.KeystoneCreateUserTokenByPasswordRequest().withBody(
    new iam.KeystoneCreateUserTokenByPasswordRequestBody().withAuth(
      new iam.PwdAuth().withIdentity(identity).withScope(scope)));
  const response = await client.keystoneCreateUserTokenByPassword(request);
  const token = response['X-Subject-Token'];
  if (response.httpStatusCode !== 201 || !token) {
    throw new Error(`no token: ${JSON.stringify(response)}`);
  }
  const { expires_at, issued_at, methods } = response.token;
  console.log(JSON.stringify({ token, expires_at, issued_at, methods }));
}

main().catch((err) => {
  console.error(err && err.errorMsg ? JSON.stringify(err) : err);
  process.exit(1);
});
