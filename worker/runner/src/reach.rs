//! The deployment's stream policy (`ROOMREC_STREAM_ALLOW`), as the media code asks for it at
//! every connection: the same classification the API applied when the URL was saved.

use std::net::IpAddr;

use roomrec_domain::reach::StreamPolicy;
use roomrec_media::Reach;

/// [`StreamPolicy`] answering the media code's [`Reach`] questions.
pub struct PolicyReach(pub StreamPolicy);

impl Reach for PolicyReach {
    fn refuse_url(&self, url: &url::Url) -> Option<String> {
        self.0.refuse_url(url).map(|refusal| refusal.to_string())
    }

    fn refuse_address(&self, host: &str, port: u16, ip: IpAddr) -> Option<String> {
        self.0.refuse_address(host, port, ip).map(|refusal| refusal.to_string())
    }
}
