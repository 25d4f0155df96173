//! Postgres connection plumbing shared by the services.

/// `url` with its password replaced by `password` (percent-encoded).
pub fn with_password(url: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (userinfo, host) = match rest.split_once('@') {
        Some((userinfo, host)) => (userinfo, host),
        None => ("", rest),
    };
    let user = userinfo.split(':').next().unwrap_or_default();
    let encoded: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{scheme}://{user}:{encoded}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_goes_into_the_url_encoded() {
        assert_eq!(
            with_password("postgres://tradeflow@postgres:5432/tradeflow?sslmode=require", "p@ss/w:rd"),
            "postgres://tradeflow:p%40ss%2Fw%3Ard@postgres:5432/tradeflow?sslmode=require"
        );
        assert_eq!(with_password("postgres://u:old@h/db", "new"), "postgres://u:new@h/db");
    }
}
