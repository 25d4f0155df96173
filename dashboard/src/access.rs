//! Who may see what: tokens at the websocket handshake and on REST, and the Origin allow-list.

use tradeflow_core::ClientId;

use crate::token::{TokenError, TokenKey};

#[derive(Clone, Debug)]
pub struct Access {
    /// `None` means auth is off: every client is visible.
    key: Option<TokenKey>,
    allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("a token is required (?token=… or Authorization: Bearer …); `tradeflow token --client <id>` prints one")]
    NoToken,
    #[error("{0}")]
    BadToken(TokenError),
    #[error("origin {0} is not allowed (see --allowed-origins)")]
    Origin(String),
    #[error("this token is for client {entitled}, not {requested}")]
    OtherClient { entitled: ClientId, requested: ClientId },
}

impl Access {
    pub fn new(key: Option<TokenKey>, allowed_origins: Vec<String>) -> Self {
        Self {
            key,
            allowed_origins: allowed_origins.into_iter().map(|o| o.trim().trim_end_matches('/').to_owned()).collect(),
        }
    }

    pub fn auth_off(&self) -> bool {
        self.key.is_none()
    }

    /// The client a request may see: `Ok(None)` = any (auth off).
    pub fn entitle(&self, token: Option<&str>) -> Result<Option<ClientId>, Refusal> {
        let Some(key) = &self.key else { return Ok(None) };
        let token = token.filter(|t| !t.is_empty()).ok_or(Refusal::NoToken)?;
        key.verify(token, chrono::Utc::now().timestamp()).map(Some).map_err(Refusal::BadToken)
    }

    /// Whether `requested` may be read by a holder of `entitled`.
    pub fn check_client(&self, entitled: Option<&ClientId>, requested: &ClientId) -> Result<(), Refusal> {
        match entitled {
            None if self.auth_off() => Ok(()),
            Some(e) if e == requested => Ok(()),
            Some(e) => Err(Refusal::OtherClient { entitled: e.clone(), requested: requested.clone() }),
            None => Err(Refusal::NoToken),
        }
    }

    /// Browsers send `Origin`; the dashboard's own origin (same host) and the allow-list pass.
    /// Requests without `Origin` (non-browser clients such as `tradeflow tail`) pass: they hold a
    /// token, which is what protects the data.
    pub fn check_origin(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), Refusal> {
        let Some(origin) = origin else { return Ok(()) };
        let origin = origin.trim_end_matches('/');
        let same_host = host.is_some_and(|h| origin == format!("http://{h}") || origin == format!("https://{h}"));
        if same_host || self.allowed_origins.iter().any(|o| o == "*" || o == origin) {
            Ok(())
        } else {
            Err(Refusal::Origin(origin.to_owned()))
        }
    }
}

impl Access {
    /// With auth off, a request must name the dashboard itself in `Host` — its listen address,
    /// `localhost`/`127.0.0.1`/`[::1]` on its port, or a host of an allowed origin — so a page on
    /// another site cannot reach it through a DNS name rebound to this address. With auth on, the
    /// token protects the data and any `Host` passes.
    pub fn check_host(&self, host: Option<&str>, listen: std::net::SocketAddr) -> bool {
        if !self.auth_off() {
            return true;
        }
        let Some(host) = host.map(str::to_ascii_lowercase) else { return false };
        let port = listen.port();
        let own =
            [listen.to_string(), format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")];
        own.contains(&host)
            || self
                .allowed_origins
                .iter()
                .any(|o| o.split_once("://").is_some_and(|(_, h)| h.trim_end_matches('/').eq_ignore_ascii_case(&host)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_auth_off_only_the_dashboards_own_hosts_pass() {
        let listen: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let off = Access::new(None, vec!["https://dash.example.com".into()]);
        assert!(off.check_host(Some("127.0.0.1:8080"), listen));
        assert!(off.check_host(Some("localhost:8080"), listen));
        assert!(off.check_host(Some("dash.example.com"), listen));
        assert!(!off.check_host(Some("evil.example.net:8080"), listen), "a rebound name");
        assert!(!off.check_host(None, listen));
        let on = Access::new(Some(TokenKey::new("a-secret-of-enough-bytes").unwrap()), vec![]);
        assert!(on.check_host(Some("evil.example.net:8080"), listen), "tokens protect the data");
    }

    #[test]
    fn origins() {
        let a = Access::new(None, vec!["https://desk.example/".into()]);
        assert!(a.check_origin(None, Some("h:1")).is_ok());
        assert!(a.check_origin(Some("http://h:1"), Some("h:1")).is_ok());
        assert!(a.check_origin(Some("https://desk.example"), Some("h:1")).is_ok());
        assert!(a.check_origin(Some("http://evil.example"), Some("h:1")).is_err());
        assert!(a.check_origin(Some("http://h:2"), Some("h:1")).is_err());
    }

    #[test]
    fn entitlement() {
        let key = TokenKey::new("entitlement-test-secret").unwrap();
        let seven = ClientId::parse("7").unwrap();
        let eight = ClientId::parse("8").unwrap();
        let token = key.sign(&seven, chrono::Utc::now().timestamp() + 60);
        let a = Access::new(Some(key), vec![]);
        assert_eq!(a.entitle(Some(&token)), Ok(Some(seven.clone())));
        assert_eq!(a.entitle(None), Err(Refusal::NoToken));
        assert!(a.check_client(Some(&seven), &seven).is_ok());
        assert!(a.check_client(Some(&seven), &eight).is_err());
        assert!(a.check_client(None, &eight).is_err());
        let open = Access::new(None, vec![]);
        assert_eq!(open.entitle(None), Ok(None));
        assert!(open.check_client(None, &eight).is_ok());
    }
}
