//! API tokens. Access tokens are JWTs signed with Ed25519 (EdDSA) by default, or HS256 with a
//! 256-bit key where the operator chooses it; the algorithm is pinned, so a token naming any
//! other (`none`, HS256 against an Ed25519 key, ...) is refused. `iss`, `aud`, `exp`, `nbf`,
//! `sub` and `jti` are required; access tokens live an hour. Refresh tokens are opaque, live
//! 30 days, are stored only as hashes, rotate on every use, and a second use of one revokes
//! its whole family. Revocation (logout, a lock, an admin's revoke) is checked on every
//! request. Access tokens name the user's stable id (`uid`) and their login (`fam`, the
//! refresh family): a user removed and added again under the same name is not the token's
//! user, and a reused refresh token revokes the access tokens of its login too. Signing keys rotate without logging anyone out: old keys verify until their
//! tokens have expired.

use std::collections::BTreeMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::KeyPair;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{Keys, Purpose};
use crate::paths::FileError;
use crate::secrets::{hex, random_bytes};
use crate::store::{Refresh, Store, StoreError, User};

pub const ISSUER: &str = "cordon";
pub const AUDIENCE: &str = "cordon-api";
pub const ACCESS_SECONDS: i64 = 3600;
pub const REFRESH_SECONDS: i64 = 30 * 86400;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    /// The user's stable id.
    pub uid: i64,
    /// The login (refresh family) the token belongs to.
    pub fam: String,
}

/// A pair as the login answers it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always "Bearer".
    pub token_type: &'static str,
    /// Seconds the access token is valid.
    pub expires_in: i64,
}

/// Why a token could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is not good (malformed, another algorithm or key, expired, revoked): the
    /// caller is not authenticated.
    #[error("{0}")]
    Refused(String),
    /// The signing keys are not usable (a file that is not a key, the current key missing),
    /// or a token could not be signed.
    #[error("{0}")]
    Keys(String),
    /// A key file could not be read or written, or is open to others.
    #[error(transparent)]
    File(#[from] FileError),
    /// The kernel gave no random bytes (for a key, a token id, a refresh token).
    #[error("random bytes: {0}")]
    Random(#[source] std::io::Error),
    /// `[api] signing` names an algorithm cordon does not sign with.
    #[error("api.signing: \"{0}\" is not a signing algorithm (eddsa, hs256)")]
    Algorithm(String),
    /// The store could not be asked.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key ring could not be read or changed.
    #[error(transparent)]
    Ring(#[from] crate::keys::KeyError),
}

pub fn now() -> i64 {
    crate::audit::unix_seconds()
}

struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The signing keys (by key id) and which one signs.
pub struct Tokens {
    algorithm: Algorithm,
    /// Every key (by id) and the one that signs; reloaded from the key ring when a token
    /// names a key not loaded yet or the current one changes, so a rotation needs no restart.
    keys: std::sync::RwLock<(BTreeMap<String, Arc<SigningKey>>, String)>,
    last_reload: std::sync::Mutex<std::time::Instant>,
    ring: Arc<Keys>,
}

fn purpose(algorithm: Algorithm) -> Purpose {
    if algorithm == Algorithm::EdDSA {
        Purpose::ApiEd25519
    } else {
        Purpose::ApiHs256
    }
}

/// Every key of `algorithm` in the ring, and the current key's id.
fn load(
    ring: &Keys,
    algorithm: Algorithm,
) -> Result<(BTreeMap<String, Arc<SigningKey>>, String), TokenError> {
    let current = ring
        .current_id(purpose(algorithm))?
        .ok_or_else(|| TokenError::Keys("no current API signing key in the key ring".into()))?;
    let mut keys = BTreeMap::new();
    for (kid, bytes) in ring.all(purpose(algorithm))? {
        let key = match algorithm {
            Algorithm::EdDSA => {
                let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&bytes).map_err(|_| {
                    TokenError::Keys(format!("the API key {kid} is not an Ed25519 key"))
                })?;
                SigningKey {
                    encoding: EncodingKey::from_ed_der(&bytes),
                    decoding: DecodingKey::from_ed_der(pair.public_key().as_ref()),
                }
            }
            _ if bytes.len() == 32 => SigningKey {
                encoding: EncodingKey::from_secret(&bytes),
                decoding: DecodingKey::from_secret(&bytes),
            },
            _ => {
                return Err(TokenError::Keys(format!(
                    "the API key {kid}: an HS256 key is 32 bytes"
                )))
            }
        };
        keys.insert(kid, Arc::new(key));
    }
    if !keys.contains_key(&current) {
        return Err(TokenError::Keys(format!(
            "the current API signing key {current} is missing from the key ring"
        )));
    }
    Ok((keys, current))
}

fn new_key(algorithm: Algorithm) -> Result<Vec<u8>, TokenError> {
    Ok(match algorithm {
        Algorithm::EdDSA => {
            let rng = ring::rand::SystemRandom::new();
            ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| TokenError::Keys("generating an Ed25519 key failed".into()))?
                .as_ref()
                .to_vec()
        }
        _ => random_bytes(32).map_err(TokenError::Random)?,
    })
}

fn parse_algorithm(algorithm: &str) -> Result<Algorithm, TokenError> {
    match algorithm {
        "eddsa" => Ok(Algorithm::EdDSA),
        "hs256" => Ok(Algorithm::HS256),
        other => Err(TokenError::Algorithm(other.to_string())),
    }
}

impl Tokens {
    /// Loads the keys of `algorithm` ("eddsa" or "hs256"), making the first on first use.
    pub fn open(ring: Arc<Keys>, algorithm: &str) -> Result<Tokens, TokenError> {
        let algorithm = parse_algorithm(algorithm)?;
        if ring.current_id(purpose(algorithm))?.is_none() {
            // Made outside the ring's lock; if another process made one meanwhile, the ring
            // keeps theirs and this one is dropped.
            let key = new_key(algorithm)?;
            ring.current_or_make(purpose(algorithm), || Ok(key))?;
        }
        let keys = load(&ring, algorithm)?;
        Ok(Tokens {
            algorithm,
            keys: std::sync::RwLock::new(keys),
            last_reload: std::sync::Mutex::new(
                std::time::Instant::now() - std::time::Duration::from_secs(2),
            ),
            ring,
        })
    }

    /// Reloads the keys from the ring, at most once a second.
    fn reload(&self) {
        let mut last = self.last_reload.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < std::time::Duration::from_secs(1) {
            return;
        }
        *last = std::time::Instant::now();
        if let Ok(fresh) = load(&self.ring, self.algorithm) {
            *self.keys.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        }
    }

    /// The signing key now: the ring's current one (a rotation from the shell shows at once).
    fn signer(&self) -> Option<(String, Arc<SigningKey>)> {
        let on_disk = self.ring.current_id(purpose(self.algorithm)).ok().flatten();
        let loaded = |t: &Tokens| {
            let k = t.keys.read().unwrap_or_else(|e| e.into_inner());
            (k.1.clone(), k.0.get(&k.1).cloned())
        };
        let (current, _) = loaded(self);
        if on_disk.is_some_and(|d| d != current) {
            self.reload();
        }
        match loaded(self) {
            (kid, Some(key)) => Some((kid, key)),
            _ => None,
        }
    }

    fn verifier(&self, kid: &str) -> Option<Arc<SigningKey>> {
        let found = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(kid)
            .cloned();
        found.or_else(|| {
            self.reload();
            self.keys
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .get(kid)
                .cloned()
        })
    }

    /// Starts signing with a new key; tokens signed with the old ones stay valid until they
    /// expire. A running host picks it up by itself.
    pub fn rotate(ring: &Keys, algorithm: &str) -> Result<String, TokenError> {
        let algorithm = parse_algorithm(algorithm)?;
        let key = zeroize::Zeroizing::new(new_key(algorithm)?);
        Ok(ring.add_current(purpose(algorithm), &key)?)
    }

    /// A new access token for `user` in login `family`, and its claims; `cutoff` is the
    /// user's revocation time (`Store::token_cutoff`).
    pub fn access(
        &self,
        user: &User,
        family: &str,
        cutoff: i64,
    ) -> Result<(String, Claims), TokenError> {
        let now = now();
        // Tokens issued in the second of a revocation are refused (`verify`: iat <= cutoff),
        // since a whole second cannot tell before from after; one issued after the
        // revocation, within that same second, says it was issued the second after, so the
        // user unlocked or logging in again at once is not refused for the token's life.
        let iat = now.max(cutoff.saturating_add(1));
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user.name.clone(),
            uid: user.id,
            fam: family.to_string(),
            exp: now + ACCESS_SECONDS,
            nbf: now,
            iat,
            jti: hex(&random_bytes(16).map_err(TokenError::Random)?),
        };
        let (kid, key) = self
            .signer()
            .ok_or_else(|| TokenError::Keys("no API signing key".into()))?;
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid);
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| TokenError::Keys(format!("signing a token: {e}")))?;
        Ok((token, claims))
    }

    /// A new pair: an access token and a refresh token in `family` (a new family if None).
    pub fn pair(
        &self,
        store: &Store,
        user: &User,
        family: Option<&str>,
    ) -> Result<TokenPair, TokenError> {
        let random = |n| random_bytes(n).map(|b| hex(&b)).map_err(TokenError::Random);
        let family = match family {
            Some(f) => f.to_string(),
            None => random(16)?,
        };
        let cutoff = store.token_cutoff(user.id)?;
        let (access_token, _) = self.access(user, &family, cutoff)?;
        let refresh = format!("cr_{}", random(32)?);
        store.add_refresh(&hash(&refresh), user, &family, now() + REFRESH_SECONDS)?;
        Ok(TokenPair {
            access_token,
            refresh_token: refresh,
            token_type: "Bearer",
            expires_in: ACCESS_SECONDS,
        })
    }

    /// Checks an access token: signature with the key its `kid` names, the pinned algorithm,
    /// issuer, audience, times, and that it was not revoked. Returns its claims.
    pub fn verify(&self, store: &Store, token: &str) -> Result<Claims, TokenError> {
        let refused = |why: &str| TokenError::Refused(why.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused("malformed token"))?;
        if header.alg != self.algorithm {
            return Err(TokenError::Refused(format!(
                "tokens here are signed with {:?}, not {:?}",
                self.algorithm, header.alg
            )));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|k| self.verifier(k))
            .ok_or_else(|| refused("unknown signing key"))?;
        let mut v = Validation::new(self.algorithm);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["iss", "aud", "sub", "exp", "nbf"]);
        v.validate_nbf = true;
        v.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &v).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => refused("the token has expired"),
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                refused("the token is not valid yet")
            }
            jsonwebtoken::errors::ErrorKind::InvalidIssuer
            | jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                refused("the token was not issued for this API")
            }
            _ => refused("invalid token"),
        })?;
        let c = data.claims;
        if c.jti.len() < 16 {
            return Err(refused("the token has no id"));
        }
        let revoked = store.is_revoked(&c.jti)?
            || store.family_revoked(&c.fam)?
            // Refused in the revocation's own second too: a revocation that misses a
            // token issued a moment before it, in the same second (on this host, or on
            // another sharing the store), is none. Tokens issued after it carry a later iat
            // (`access`).
            || c.iat <= store.token_cutoff(c.uid)?;
        if revoked {
            return Err(refused("the token was revoked"));
        }
        Ok(c)
    }

    /// Trades a refresh token for a new pair for its user, who must still exist and not be
    /// locked. A reused one revokes its whole login.
    pub fn refresh(&self, store: &Store, refresh: &str) -> Result<(User, TokenPair), RefreshError> {
        let now = now();
        match store
            .use_refresh(&hash(refresh), now, now + ACCESS_SECONDS)
            .map_err(|e| RefreshError::Failed(e.into()))?
        {
            Refresh::Valid { user_id, family } => {
                let user = match store
                    .user_by_id(user_id)
                    .map_err(|e| RefreshError::Failed(e.into()))?
                {
                    Some(u) if !u.locked => u,
                    _ => return Err(RefreshError::Invalid),
                };
                let pair = self
                    .pair(store, &user, Some(&family))
                    .map_err(RefreshError::Failed)?;
                Ok((user, pair))
            }
            Refresh::Reused { user_id, family } => Err(RefreshError::Reused { user_id, family }),
            Refresh::Invalid => Err(RefreshError::Invalid),
        }
    }
}

#[derive(Debug)]
pub enum RefreshError {
    Invalid,
    Reused { user_id: i64, family: String },
    Failed(TokenError),
}

/// How refresh tokens are stored: never the token itself.
pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}
