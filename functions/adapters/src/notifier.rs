//! [`HttpNotifier`]: POSTs signed callbacks with reqwest, behind the SSRF guard: the URL's host
//! is resolved once, every address is checked, and the connection goes to exactly the checked
//! address (no second lookup an attacker's DNS could answer differently), redirects never
//! followed. Clients, with their connection pools, are kept per checked target, so
//! connections are reused only to the address this attempt checked.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use roomrec_domain::error::error_chain;
use roomrec_domain::ports::Notifier;
use roomrec_domain::url::{is_private_ip, CallbackUrl, PrivateAddresses};
use roomrec_domain::webhook::{parse_retry_after, AttemptResult, SignedHeaders, ATTEMPT_TIMEOUT};

/// Resolves a host name to addresses (the system resolver, or a fake in tests).
#[async_trait]
pub trait Resolve: Send + Sync {
    /// Every address of `host` for `port`.
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The system resolver, through tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// Most HTTP clients kept at once; past it the pool starts afresh (each client holds its own
/// idle connections, so an unbounded map would grow with every receiver ever called).
const MAX_CLIENTS: usize = 256;

/// Most of an answer's body read (and dropped) so its connection can be reused; a longer one
/// closes the connection instead.
const MAX_DRAIN_BYTES: usize = 64 * 1024;

/// Longest a save of the callback waits for its host's addresses: the lookup is the tenant's
/// DNS, so it must not hold the request. A name that does not resolve in time is accepted
/// and checked at every delivery, as one that does not resolve yet.
pub const SAVE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// [`Notifier`] over HTTP(S).
#[derive(Clone)]
pub struct HttpNotifier {
    resolver: Arc<dyn Resolve>,
    policy: PrivateAddresses,
    clients: Arc<Mutex<HashMap<Target, reqwest::Client>>>,
}

/// Where a callback may be sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// The URL's host is a literal address, checked.
    Literal,
    /// Connect to this checked address for the URL's host name.
    Pinned { host: String, addr: SocketAddr },
}

impl HttpNotifier {
    /// A notifier using `resolver`, refusing private addresses unless `policy` allows them.
    pub fn new(resolver: Arc<dyn Resolve>, policy: PrivateAddresses) -> Self {
        Self { resolver, policy, clients: Arc::default() }
    }

    /// The client for `target`: it connects only to the target's checked address.
    fn client(&self, target: &Target) -> Result<reqwest::Client, reqwest::Error> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(target) {
            return Ok(client.clone());
        }
        let mut builder =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(ATTEMPT_TIMEOUT).no_proxy();
        if let Target::Pinned { host, addr } = target {
            builder = builder.resolve(host, *addr);
        }
        let client = builder.build()?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(target.clone(), client.clone());
        Ok(client)
    }

    /// Resolves and checks the URL's host; `Err` says why it may not be called.
    pub async fn target(&self, url: &CallbackUrl) -> Result<Target, AttemptResult> {
        let parsed = url::Url::parse(url.as_str()).map_err(|e| AttemptResult::Refused(e.to_string()))?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        let refuse = |ip: IpAddr| self.policy == PrivateAddresses::Refuse && is_private_ip(ip);
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) if refuse(ip.into()) => {
                Err(AttemptResult::Refused(format!("{ip} is a private address")))
            }
            Some(url::Host::Ipv6(ip)) if refuse(ip.into()) => {
                Err(AttemptResult::Refused(format!("{ip} is a private address")))
            }
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => Ok(Target::Literal),
            Some(url::Host::Domain(host)) => {
                let addrs = match tokio::time::timeout(ATTEMPT_TIMEOUT, self.resolver.resolve(host, port)).await {
                    Ok(Ok(addrs)) => addrs,
                    Ok(Err(err)) => {
                        tracing::info!(host, error = %err, "callback host did not resolve");
                        return Err(AttemptResult::Unreachable(format!("cannot resolve {host}")));
                    }
                    Err(_) => return Err(AttemptResult::Unreachable(format!("resolving {host} timed out"))),
                };
                if let Some(bad) = addrs.iter().find(|a| refuse(a.ip())) {
                    return Err(AttemptResult::Refused(format!("{host} resolves to the private address {}", bad.ip())));
                }
                let addr =
                    *addrs.first().ok_or_else(|| AttemptResult::Unreachable(format!("{host} has no address")))?;
                Ok(Target::Pinned { host: host.to_owned(), addr })
            }
            None => Err(AttemptResult::Refused("the URL names no host".into())),
        }
    }
}

#[async_trait]
impl Notifier for HttpNotifier {
    async fn refusal(&self, url: &CallbackUrl) -> Option<String> {
        // A name that does not resolve yet (or not in time) may resolve later: only a refused
        // address is final; every delivery checks again.
        match tokio::time::timeout(SAVE_LOOKUP_TIMEOUT, self.target(url)).await {
            Ok(Err(AttemptResult::Refused(reason))) => Some(reason),
            Ok(_) => None,
            Err(_) => {
                tracing::info!(url = url.as_str(), "the callback host did not resolve in time; checked at delivery");
                None
            }
        }
    }

    async fn post(&self, url: &CallbackUrl, headers: &SignedHeaders, body: Vec<u8>) -> AttemptResult {
        let target = match self.target(url).await {
            Ok(target) => target,
            Err(refusal) => return refusal,
        };
        let client = match self.client(&target) {
            Ok(client) => client,
            Err(err) => {
                tracing::error!(error = %error_chain(&err), "could not build the HTTP client");
                return AttemptResult::Unreachable("internal error".into());
            }
        };
        let mut request = client.post(url.as_str()).header("content-type", "application/json").body(body);
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(mut response) => {
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                let status = response.status().as_u16();
                // A connection goes back to the pool only once its answer was read to the end.
                let mut drained = 0;
                while let Ok(Some(chunk)) = response.chunk().await {
                    drained += chunk.len();
                    if drained > MAX_DRAIN_BYTES {
                        break;
                    }
                }
                AttemptResult::Answered { status, retry_after }
            }
            Err(err) if err.is_timeout() => AttemptResult::TimedOut,
            Err(err) => {
                // The delivery log is the tenant's to read: a short reason there, the chain here.
                tracing::info!(error = %error_chain(&err), "callback attempt failed");
                let reason = if err.is_connect() { "could not connect" } else { "the connection failed" };
                AttemptResult::Unreachable(reason.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeResolver(Vec<IpAddr>);

    #[async_trait]
    impl Resolve for FakeResolver {
        async fn resolve(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            Ok(self.0.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
        }
    }

    fn notifier(ips: &[&str], policy: PrivateAddresses) -> HttpNotifier {
        let ips = ips.iter().map(|ip| ip.parse().unwrap()).collect();
        HttpNotifier::new(Arc::new(FakeResolver(ips)), policy)
    }

    fn url(text: &str) -> CallbackUrl {
        CallbackUrl::parse(text, PrivateAddresses::Allow).unwrap()
    }

    #[tokio::test]
    async fn names_resolving_to_private_or_metadata_addresses_are_refused() {
        for ip in ["127.0.0.1", "10.0.0.7", "169.254.169.254", "169.254.170.2", "fd00:ec2::23", "100.64.1.1", "::1"] {
            let target = notifier(&["93.184.216.34", ip], PrivateAddresses::Refuse)
                .target(&url("https://hooks.example.com/cb"))
                .await;
            assert!(matches!(target, Err(AttemptResult::Refused(_))), "{ip}: {target:?}");
        }
    }

    #[tokio::test]
    async fn literal_private_addresses_are_refused_at_send_time() {
        let n = notifier(&[], PrivateAddresses::Refuse);
        for text in ["http://127.0.0.1:9/cb", "http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::23]/"] {
            let result =
                n.post(&url(text), &roomrec_domain::webhook::sign(b"k", "id", 1, "2", b"{}"), b"{}".to_vec()).await;
            assert!(matches!(result, AttemptResult::Refused(_)), "{text}: {result:?}");
        }
    }

    #[tokio::test]
    async fn public_names_are_pinned_to_the_checked_address() {
        let target =
            notifier(&["93.184.216.34"], PrivateAddresses::Refuse).target(&url("https://hooks.example.com/cb")).await;
        assert_eq!(
            target,
            Ok(Target::Pinned { host: "hooks.example.com".into(), addr: "93.184.216.34:443".parse().unwrap() })
        );
    }

    #[tokio::test]
    async fn private_addresses_are_allowed_when_the_deployment_says_so() {
        let target = notifier(&["127.0.0.1"], PrivateAddresses::Allow).target(&url("http://localhost:8080/cb")).await;
        assert_eq!(target, Ok(Target::Pinned { host: "localhost".into(), addr: "127.0.0.1:8080".parse().unwrap() }));
    }

    #[tokio::test]
    async fn saving_a_url_whose_name_resolves_privately_is_refused_but_an_unresolved_one_is_not() {
        let private =
            notifier(&["10.1.2.3"], PrivateAddresses::Refuse).refusal(&url("https://hooks.example.com/cb")).await;
        assert!(private.is_some_and(|reason| reason.contains("10.1.2.3")));
        let public =
            notifier(&["93.184.216.34"], PrivateAddresses::Refuse).refusal(&url("https://hooks.example.com/cb")).await;
        assert_eq!(public, None);
        let unresolved = notifier(&[], PrivateAddresses::Refuse).refusal(&url("https://not-yet.example.com/cb")).await;
        assert_eq!(unresolved, None, "a name without addresses yet may get them later");
    }

    /// A resolver whose every lookup takes a minute (a tenant's stalling DNS).
    struct StallingResolver;

    #[async_trait]
    impl Resolve for StallingResolver {
        async fn resolve(&self, _host: &str, _port: u16) -> std::io::Result<Vec<SocketAddr>> {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn saving_a_url_whose_name_stalls_answers_within_the_save_timeout_and_accepts_it() {
        let notifier = HttpNotifier::new(Arc::new(StallingResolver), PrivateAddresses::Refuse);
        let started = std::time::Instant::now();
        let refusal = notifier.refusal(&url("https://stalls.example.com/cb")).await;
        assert_eq!(refusal, None, "checked again at delivery");
        assert!(started.elapsed() < SAVE_LOOKUP_TIMEOUT + Duration::from_millis(500), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_failed_attempt_tells_the_delivery_log_a_short_reason_not_the_client_error_chain() {
        // Nothing listens on port 9 of loopback: the connection is refused.
        let n = notifier(&["127.0.0.1"], PrivateAddresses::Allow);
        let result = n
            .post(
                &url("http://receiver.test:9/cb"),
                &roomrec_domain::webhook::sign(b"k", "id", 1, "2", b"{}"),
                b"{}".to_vec(),
            )
            .await;
        assert_eq!(result, AttemptResult::Unreachable("could not connect".into()));
    }
}
