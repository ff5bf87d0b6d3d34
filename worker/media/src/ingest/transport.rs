//! The bytes of one RTMP connection on a non-blocking socket: plain for rtmp, TLS (rustls,
//! certificates checked against the system's roots and the URL's host name) for rtmps.

use std::io::{self, Read, Write};
use std::sync::{Arc, OnceLock};

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<ClientConnection>, TcpStream),
}

impl Transport {
    /// TLS to `host` over `socket`; the handshake runs as the connection is read and written.
    pub(crate) fn tls(socket: TcpStream, host: &str) -> io::Result<Self> {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let connection = ClientConnection::new(tls_config()?, name).map_err(io::Error::other)?;
        Ok(Self::Tls(Box::new(connection), socket))
    }

    pub(crate) fn socket(&mut self) -> &mut TcpStream {
        match self {
            Self::Plain(socket) | Self::Tls(_, socket) => socket,
        }
    }

    /// Whether a read that filled less than its buffer took all the socket had: so for plain
    /// TCP; TLS hands out what it decrypted from one read of the socket, a few KiB.
    pub(crate) fn drained_by_short_read(&self) -> bool {
        matches!(self, Self::Plain(_))
    }

    /// Reads plaintext; `Ok(0)` is the end of the connection, `WouldBlock` that nothing is
    /// there yet.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(socket) => socket.read(buf),
            Self::Tls(tls, socket) => loop {
                match tls.reader().read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    result => return result,
                }
                if tls.read_tls(socket)? == 0 {
                    return Ok(0);
                }
                tls.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                flush_tls(tls, socket)?;
            },
        }
    }

    /// Writes as much of `bytes` as the socket takes now (TLS: all of it, buffered).
    pub(crate) fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(socket) => socket.write(bytes),
            Self::Tls(tls, socket) => {
                let n = tls.writer().write(bytes)?;
                flush_tls(tls, socket)?;
                Ok(n)
            }
        }
    }

    /// Sends what TLS still holds (records written while the socket was full).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(_) => Ok(()),
            Self::Tls(tls, socket) => flush_tls(tls, socket),
        }
    }
}

/// Writes TLS records until none are left or the socket is full.
fn flush_tls(tls: &mut ClientConnection, socket: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(socket) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// One client configuration: the system's root certificates (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` are honoured), on the aws-lc-rs provider the rest of the worker uses.
fn tls_config() -> io::Result<Arc<ClientConfig>> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no root certificates found".to_owned());
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(io::Error::other)
}
