//! `mcpt target`'s login, for flows that log in and use a token (issue 16): `POST /login`
//! hands out a token for any user with a password, and `GET /me` answers only a request that
//! brings one back (`Authorization: Bearer`, or the `mcpt_session` cookie), so a test can
//! count the requests that came with a bad token or none.
//!
//! A token is `USER.MAC`: the user and an HMAC-SHA256 of it under a key drawn when the target
//! starts, so the target keeps no session table and a token from another target run fails.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use hmac::{KeyInit, Mac};
use serde::Deserialize;

use super::{LOGIN, ME, Stats, bad_request};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The cookie `POST /login` sets and `GET /me` accepts.
pub const SESSION_COOKIE: &str = "mcpt_session";
/// Users counted one by one in `/stats`; later ones count under [`MORE_USERS`].
const USERS_KEPT: usize = 100_000;
const MORE_USERS: &str = "(more)";
/// The longest user name.
const MAX_USER: usize = 200;

/// Logins per user and the requests to `/me` refused, and the key tokens are made with.
pub struct Logins {
    key: [u8; 32],
    per_user: Mutex<BTreeMap<String, u64>>,
    rejected: AtomicU64,
}

impl Default for Logins {
    fn default() -> Self {
        Logins {
            key: rand::random(),
            per_user: Mutex::default(),
            rejected: AtomicU64::new(0),
        }
    }
}

impl Logins {
    /// The MAC of `user` under this run's key, not yet finished.
    fn keyed(&self, user: &str) -> HmacSha256 {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        m.update(user.as_bytes());
        m
    }

    pub fn token(&self, user: &str) -> String {
        let mac = self.keyed(user).finalize().into_bytes();
        format!("{user}.{}", crate::hex::encode(&mac))
    }

    /// The user a token was made for, if this target made it.
    pub fn user_of<'t>(&self, token: &'t str) -> Option<&'t str> {
        let (user, mac) = token.rsplit_once('.')?;
        let tag = crate::hex::decode(mac.as_bytes())?;
        // Compared in constant time, as a real service would.
        self.keyed(user).verify_slice(&tag).ok()?;
        Some(user)
    }

    fn logged_in(&self, user: &str) {
        let mut users = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let key = if users.len() < USERS_KEPT || users.contains_key(user) {
            user
        } else {
            MORE_USERS
        };
        *users.entry(key.to_string()).or_default() += 1;
    }

    /// Logins per user since the start or the last reset.
    pub fn per_user(&self) -> BTreeMap<String, u64> {
        self.per_user
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests to `/me` refused for a missing or bad token.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Relaxed)
    }

    pub fn reset(&self) {
        self.per_user
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.rejected.store(0, Relaxed);
    }
}

#[derive(Deserialize, Default)]
struct Credentials {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

/// The credentials of a login body: JSON, or a form when the content type says so; else why
/// the body could not be read.
fn credentials(req: &HttpRequest, body: &[u8]) -> Result<Credentials, String> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if form {
        let mut c = Credentials::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "user" => c.user = v.into_owned(),
                "password" => c.password = v.into_owned(),
                _ => {}
            }
        }
        return Ok(c);
    }
    serde_json::from_slice(body).map_err(|e| {
        format!("a JSON object {{\"user\", \"password\"}} or a form was expected: {e}")
    })
}

/// A user name that fits in a token and a cookie as it is.
fn check_user(user: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._@+-".contains(c);
    if user.is_empty() || user.len() > MAX_USER || !user.chars().all(allowed) {
        return Err(format!(
            "user {user:?} must be 1 to {MAX_USER} letters, digits or . _ @ + -"
        ));
    }
    Ok(())
}

pub(super) async fn login(stats: Stats, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    stats.count(LOGIN, &req);
    if req.method() != actix_web::http::Method::POST {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "POST"))
            .json(serde_json::json!({"error": "method_not_allowed",
                "message": "log in with POST", "field": null}));
    }
    let c = match credentials(&req, &body) {
        Ok(c) => c,
        Err(why) => return bad_request("body", why),
    };
    if let Err(why) = check_user(&c.user) {
        return bad_request("user", why);
    }
    if c.password.is_empty() {
        return bad_request("password", "password is required".into());
    }
    let logins = stats.logins();
    logins.logged_in(&c.user);
    let token = logins.token(&c.user);
    HttpResponse::Ok()
        .insert_header((
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly"),
        ))
        .json(serde_json::json!({"token": token, "user": c.user}))
}

/// The token a request brings: `Authorization: Bearer`, else the session cookie.
fn token_of(req: &HttpRequest) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(t) = bearer {
        return Some(t.trim().to_string());
    }
    let cookies = req.headers().get_all(header::COOKIE);
    cookies
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then(|| value.to_string())
        })
}

pub(super) async fn me(stats: Stats, req: HttpRequest) -> HttpResponse {
    stats.count(ME, &req);
    let logins = stats.logins();
    let token = token_of(&req);
    match token.as_deref().and_then(|t| logins.user_of(t)) {
        Some(user) => HttpResponse::Ok().json(serde_json::json!({"user": user, "owner": user})),
        None => {
            logins.rejected.fetch_add(1, Relaxed);
            let message = if token.is_some() {
                "the token was not made by this target"
            } else {
                "no token: send Authorization: Bearer TOKEN or the mcpt_session cookie"
            };
            HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .json(
                    serde_json::json!({"error": "unauthorized", "message": message,
                    "field": "authorization"}),
                )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_user_and_a_changed_one_fails() {
        let logins = Logins::default();
        let t = logins.token("alice@example.com");
        assert_eq!(logins.user_of(&t), Some("alice@example.com"));
        let forged = t.replacen("alice", "mallory", 1);
        assert_eq!(logins.user_of(&forged), None);
        assert_eq!(logins.user_of("alice"), None);
        assert_eq!(Logins::default().user_of(&t), None, "another run's key");
    }
}
