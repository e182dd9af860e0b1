//! `strata login` and `strata logout`: check credentials against a registry, then keep or
//! forget them the way the Docker CLI does (see [`crate::credentials`]).
//!
//! A login asks the registry's upstream host for `GET /v2/`. A registry that answers `200`
//! needs no credentials (they are stored anyway, as Docker does); one that challenges with
//! Basic gets the credentials on a second `GET /v2/`; one that challenges with Bearer has its
//! token server asked for a token (no scope) with the credentials. A `401` from either is
//! [`RemoteError::AuthRefused`].

use reqwest::header::AUTHORIZATION;
use reqwest::{Method, StatusCode, Url};

use crate::auth::{self, TokenRequest};
use crate::client::{
    Action, Call, Remote, error_detail, own_challenge, realm_may_have_credentials,
};
use crate::credentials::{Credential, registry_of};
use crate::error::RemoteError;

impl Remote {
    /// Checks `username`/`password` against `server` (a registry name such as `docker.io`
    /// or `localhost:5000`, or a URL like `https://index.docker.io/v1/`), then stores them.
    pub async fn login(
        &self,
        server: &str,
        username: &str,
        password: &str,
    ) -> Result<(), RemoteError> {
        self.verify_credentials(server, username, password).await?;
        self.store_credentials(server, username, password).await
    }

    /// Checks credentials against `server` without storing them.
    pub async fn verify_credentials(
        &self,
        server: &str,
        username: &str,
        password: &str,
    ) -> Result<(), RemoteError> {
        let registry = registry_of(server);
        let hosts = self.hosts(&registry)?;
        let host = hosts
            .iter()
            .rev()
            .find(|h| h.capabilities.push)
            .or(hosts.last())
            .ok_or_else(|| RemoteError::NoHost {
                reference: registry.clone(),
                capability: "login",
            })?
            .clone();
        let url_text = format!("{}/", host.base_url());
        let url = Url::parse(&url_text).map_err(|e| RemoteError::Protocol {
            reference: registry.clone(),
            host: host.host.clone(),
            message: format!("invalid url {url_text:?}: {e}"),
        })?;
        let mut call = Call::new(
            &registry,
            &registry,
            Action::Pull,
            &host,
            Method::GET,
            url,
            Vec::new(),
        );
        call.authorize = false;
        let resp = self.send(&call).await?;
        let refused = |message: String| RemoteError::AuthRefused {
            reference: registry.clone(),
            host: host.host.clone(),
            message,
        };
        match resp.status() {
            s if s.is_success() => return Ok(()),
            StatusCode::UNAUTHORIZED => own_challenge(&call, &resp)?,
            _ => return Err(self.unexpected(&call, resp).await),
        }
        let challenges = auth::challenges(resp.headers());
        let client = self.client(&host)?;
        let credential = Credential::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer")
            && let Some(realm) = bearer.param("realm")
        {
            realm_may_have_credentials(&call, realm)?;
            let request =
                auth::token_request(realm, bearer.param("service"), &[], Some(&credential))
                    .map_err(|message| RemoteError::Token {
                        realm: realm.to_owned(),
                        message,
                    })?;
            let TokenRequest::Get { url, basic } = request else {
                return Err(refused("unexpected token request".into()));
            };
            let mut req = client.get(url);
            if let Some(b) = basic {
                req = req.header(AUTHORIZATION, b);
            }
            let resp = req
                .send()
                .await
                .map_err(|source| RemoteError::Unreachable {
                    reference: registry.clone(),
                    host: realm.to_owned(),
                    source,
                })?;
            return match resp.status() {
                s if s.is_success() => Ok(()),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let (_, message) = error_detail(resp).await;
                    Err(refused(if message.is_empty() {
                        "invalid username or password".into()
                    } else {
                        message
                    }))
                }
                status => {
                    let (code, message) = error_detail(resp).await;
                    Err(RemoteError::Token {
                        realm: realm.to_owned(),
                        message: format!("answered {status} {code} {message}")
                            .trim()
                            .to_owned(),
                    })
                }
            };
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let resp = client
                .get(call.url.clone())
                .header(AUTHORIZATION, auth::basic_header(username, password))
                .send()
                .await
                .map_err(|source| RemoteError::Unreachable {
                    reference: registry.clone(),
                    host: host.host.clone(),
                    source,
                })?;
            return match resp.status() {
                s if s.is_success() => Ok(()),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    Err(refused("invalid username or password".into()))
                }
                _ => Err(self.unexpected(&call, resp).await),
            };
        }
        Err(refused(
            "the registry asks for an authentication scheme strata does not speak".into(),
        ))
    }

    /// Stores credentials for `server` in the configured credential helper or in
    /// `config.json`.
    pub async fn store_credentials(
        &self,
        server: &str,
        username: &str,
        password: &str,
    ) -> Result<(), RemoteError> {
        self.inner
            .credentials
            .store(server, username, password)
            .await?;
        self.forget_credential(server).await;
        Ok(())
    }

    /// Forgets the credentials of `server`; `Ok(false)` when `config.json` had none (a helper
    /// is asked to erase them either way).
    pub async fn erase_credentials(&self, server: &str) -> Result<bool, RemoteError> {
        let removed = self.inner.credentials.erase(server).await?;
        self.forget_credential(server).await;
        Ok(removed)
    }
}
