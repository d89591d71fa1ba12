//! The Secret keys a Destination refers to and where worker pods find them: the operator mounts
//! each referenced Secret as a volume at [`mount_dir`] (only the keys the Destination uses), and
//! the worker reads the files, again whenever the partner refuses its credentials, so a rotated
//! Secret is used without a restart. The environment variables of [`env_names`] are the fallback
//! of `courier-worker run` and of worker pods made by older operators. Secret values never
//! travel through the operator or the coordination protocol.

use crate::destination::{AuthSettings, DestinationSettings};

/// The environment variables the operator injects into worker pods.
pub mod env_names {
    /// Bearer token.
    pub const AUTH_TOKEN: &str = "COURIER_AUTH_TOKEN";
    /// Basic auth user name.
    pub const AUTH_USERNAME: &str = "COURIER_AUTH_USERNAME";
    /// Basic auth password.
    pub const AUTH_PASSWORD: &str = "COURIER_AUTH_PASSWORD";
    /// Value of the API-key style header.
    pub const AUTH_HEADER_VALUE: &str = "COURIER_AUTH_HEADER_VALUE";
    /// OAuth2 client id.
    pub const OAUTH2_CLIENT_ID: &str = "COURIER_OAUTH2_CLIENT_ID";
    /// OAuth2 client secret.
    pub const OAUTH2_CLIENT_SECRET: &str = "COURIER_OAUTH2_CLIENT_SECRET";
    /// Extra CA certificates (PEM) for the partner's TLS.
    pub const TLS_CA_PEM: &str = "COURIER_TLS_CA_PEM";
}

/// Where worker pods find the Secrets their Destination references, one directory per Secret.
pub const MOUNT_ROOT: &str = "/var/run/secrets/courier.dev/secrets";

/// The directory worker pods find Secret `secret` in (each used key is a file there).
pub fn mount_dir(secret: &str) -> String {
    format!("{MOUNT_ROOT}/{secret}")
}

/// Key of a basic-auth Secret holding the user name.
pub const BASIC_USERNAME_KEY: &str = "username";
/// Key of a basic-auth Secret holding the password.
pub const BASIC_PASSWORD_KEY: &str = "password";

/// One Secret key a Destination needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUse {
    /// Secret name.
    pub secret: String,
    /// Key inside the Secret.
    pub key: String,
    /// The environment variable carrying the value into worker pods.
    pub env: &'static str,
}

impl SecretUse {
    fn new(secret: &str, key: &str, env: &'static str) -> Self {
        SecretUse { secret: secret.to_owned(), key: key.to_owned(), env }
    }
}

/// Every Secret key the auth method uses, in a stable order.
pub fn auth_uses(auth: &AuthSettings) -> Vec<SecretUse> {
    let mut uses = Vec::new();
    if let Some(b) = &auth.bearer {
        uses.push(SecretUse::new(&b.secret_ref.name, &b.secret_ref.key, env_names::AUTH_TOKEN));
    }
    if let Some(b) = &auth.basic {
        uses.push(SecretUse::new(&b.secret_ref.name, BASIC_USERNAME_KEY, env_names::AUTH_USERNAME));
        uses.push(SecretUse::new(&b.secret_ref.name, BASIC_PASSWORD_KEY, env_names::AUTH_PASSWORD));
    }
    if let Some(o) = &auth.oauth2_client_credentials {
        uses.push(SecretUse::new(&o.client_id_ref.name, &o.client_id_ref.key, env_names::OAUTH2_CLIENT_ID));
        uses.push(SecretUse::new(&o.client_secret_ref.name, &o.client_secret_ref.key, env_names::OAUTH2_CLIENT_SECRET));
    }
    if let Some(h) = &auth.header {
        uses.push(SecretUse::new(&h.secret_ref.name, &h.secret_ref.key, env_names::AUTH_HEADER_VALUE));
    }
    uses
}

/// Every Secret key the Destination uses (auth, then the TLS CA), in a stable order.
pub fn secret_uses(settings: &DestinationSettings) -> Vec<SecretUse> {
    let mut uses = settings.auth.as_ref().map(auth_uses).unwrap_or_default();
    if let Some(ca) = settings.endpoint.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()) {
        uses.push(SecretUse::new(&ca.name, &ca.key, env_names::TLS_CA_PEM));
    }
    uses
}

/// The Secret names a Destination refers to, each once, sorted.
pub fn secret_names(settings: &DestinationSettings) -> Vec<String> {
    let names: std::collections::BTreeSet<String> = secret_uses(settings).into_iter().map(|u| u.secret).collect();
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> DestinationSettings {
        let api: courier_api::destination::DestinationSpec = serde_norway::from_str(yaml).expect("valid spec");
        DestinationSettings::from(&api)
    }

    #[test]
    fn every_auth_method_names_its_keys_and_the_variable_carrying_each() {
        type Case = (&'static str, &'static [(&'static str, &'static str, &'static str)]);
        let cases: &[Case] = &[
            ("bearer: {secretRef: {name: t, key: token}}", &[("t", "token", "COURIER_AUTH_TOKEN")]),
            (
                "basic: {secretRef: {name: b}}",
                &[("b", "username", "COURIER_AUTH_USERNAME"), ("b", "password", "COURIER_AUTH_PASSWORD")],
            ),
            (
                "oauth2ClientCredentials: {tokenUrl: 'http://x/t', clientIdRef: {name: o, key: id}, clientSecretRef: {name: o2, key: s}}",
                &[("o", "id", "COURIER_OAUTH2_CLIENT_ID"), ("o2", "s", "COURIER_OAUTH2_CLIENT_SECRET")],
            ),
            ("header: {name: X-Api-Key, secretRef: {name: h, key: k}}", &[("h", "k", "COURIER_AUTH_HEADER_VALUE")]),
        ];
        for (auth, want) in cases {
            let s = settings(&format!(
                "endpoint: {{url: 'https://x/', tls: {{caSecretRef: {{name: ca, key: pem}}}}}}\nrateLimit: {{requestsPerSecond: 1}}\nauth: {{{auth}}}\n"
            ));
            let got: Vec<_> = secret_uses(&s).into_iter().map(|u| (u.secret, u.key, u.env)).collect();
            let mut want: Vec<_> = want.iter().map(|(s, k, e)| ((*s).to_owned(), (*k).to_owned(), *e)).collect();
            want.push(("ca".to_owned(), "pem".to_owned(), "COURIER_TLS_CA_PEM"));
            assert_eq!(got, want, "{auth}");
        }
    }

    #[test]
    fn each_secret_is_mounted_in_a_directory_of_its_own() {
        assert_eq!(mount_dir("partner-token"), "/var/run/secrets/courier.dev/secrets/partner-token");
    }

    #[test]
    fn a_destination_without_auth_or_ca_needs_no_secret() {
        let s = settings("endpoint: {url: 'http://x/'}\nrateLimit: {requestsPerSecond: 1}\n");
        assert!(secret_uses(&s).is_empty());
        assert!(secret_names(&s).is_empty());
    }
}
