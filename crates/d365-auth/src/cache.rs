//! The single-flight token cache every flow sits behind (modelled on arrow-rs object_store's
//! `client/token.rs`):
//!
//! * one fetch at a time per provider: concurrent callers wait on the same lock and then find
//!   the fresh token, so a process makes one token request per token lifetime;
//! * a token counts as fresh until a safety margin before its expiry (5 minutes, or half the
//!   token's lifetime when that is shorter), so a request never leaves with a token about to
//!   expire;
//! * after a 401, [`CachedProvider::refresh_after_rejection`] refreshes once however many
//!   requests report the same rejected token: the first one fetches, the others find a token
//!   different from the one they report and use it;
//! * time comes from a [`Clock`], so tests move it instead of sleeping.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::clock::Clock;
use crate::{AccessToken, AuthError, TokenProvider};

/// The default safety margin before expiry.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(300);

/// Whether a token expiring at `expires_at`, obtained at `obtained_at`, is still fresh at `now`.
pub fn is_fresh(
    expires_at: Option<OffsetDateTime>,
    obtained_at: OffsetDateTime,
    now: OffsetDateTime,
    margin: Duration,
) -> bool {
    let Some(exp) = expires_at else { return true };
    let lifetime = exp - obtained_at;
    let margin = time::Duration::try_from(margin).unwrap_or(time::Duration::minutes(5)).min(lifetime / 2);
    now + margin < exp
}

/// Where a cached provider gets tokens from: one implementation per flow.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// Gets a new token. `rejected` is the token the Web API refused, when this fetch follows a
    /// 401: the source must not return it again.
    async fn fetch(&self, rejected: Option<&AccessToken>) -> Result<AccessToken, AuthError>;

    /// The flow's short name (`client_credentials`, `authorization_code`, …).
    fn flow_name(&self) -> &'static str;
}

#[derive(Clone)]
struct Cached {
    token: AccessToken,
    obtained_at: OffsetDateTime,
}

/// A [`TokenProvider`] made of a [`TokenSource`] behind the single-flight cache.
pub struct CachedProvider {
    source: Box<dyn TokenSource>,
    cache: tokio::sync::Mutex<Option<Cached>>,
    clock: Arc<dyn Clock>,
    margin: Duration,
}

impl fmt::Debug for CachedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedProvider").field("source", &self.source).field("margin", &self.margin).finish()
    }
}

impl CachedProvider {
    /// Wraps `source`.
    pub fn new(source: Box<dyn TokenSource>, clock: Arc<dyn Clock>, margin: Duration) -> Self {
        Self { source, cache: tokio::sync::Mutex::new(None), clock, margin }
    }

    fn fresh(&self, c: &Cached) -> bool {
        is_fresh(c.token.expires_at(), c.obtained_at, self.clock.now(), self.margin)
    }
}

#[async_trait::async_trait]
impl TokenProvider for CachedProvider {
    async fn token(&self) -> Result<AccessToken, AuthError> {
        let mut slot = self.cache.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| self.fresh(c)) {
            return Ok(c.token.clone());
        }
        tracing::debug!(flow = self.source.flow_name(), "fetching a new access token");
        let token = self.source.fetch(None).await?;
        *slot = Some(Cached { token: token.clone(), obtained_at: self.clock.now() });
        Ok(token)
    }

    async fn refresh_after_rejection(&self, rejected: &AccessToken) -> Result<AccessToken, AuthError> {
        let mut slot = self.cache.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.token.same_token(rejected) && self.fresh(c)) {
            return Ok(c.token.clone());
        }
        tracing::debug!(flow = self.source.flow_name(), "access token rejected: fetching another");
        *slot = None;
        let token = self.source.fetch(Some(rejected)).await?;
        *slot = Some(Cached { token: token.clone(), obtained_at: self.clock.now() });
        Ok(token)
    }

    fn flow_name(&self) -> &'static str {
        self.source.flow_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        clock: ManualClock,
        lifetime: i64,
    }

    #[async_trait::async_trait]
    impl TokenSource for Counting {
        async fn fetch(&self, _rejected: Option<&AccessToken>) -> Result<AccessToken, AuthError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(AccessToken::new(format!("t{n}"), Some(self.clock.now() + time::Duration::seconds(self.lifetime))))
        }
        fn flow_name(&self) -> &'static str {
            "counting"
        }
    }

    fn provider(lifetime: i64) -> (Arc<CachedProvider>, Arc<AtomicUsize>, ManualClock) {
        let calls = Arc::new(AtomicUsize::new(0));
        let clock = ManualClock::new();
        let src = Counting { calls: calls.clone(), clock: clock.clone(), lifetime };
        (Arc::new(CachedProvider::new(Box::new(src), Arc::new(clock.clone()), DEFAULT_MARGIN)), calls, clock)
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_per_lifetime() {
        let (p, calls, clock) = provider(3600);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                tokio::spawn({
                    let p = p.clone();
                    async move { p.token().await.unwrap() }
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().secret(), "t1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(3600 - 301));
        assert_eq!(p.token().await.unwrap().secret(), "t1", "fresh until the margin");
        clock.advance(Duration::from_secs(2));
        assert_eq!(p.token().await.unwrap().secret(), "t2", "refreshed inside the margin");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn short_lived_tokens_use_half_their_lifetime_as_margin() {
        let (p, _, clock) = provider(10);
        assert_eq!(p.token().await.unwrap().secret(), "t1");
        clock.advance(Duration::from_secs(4));
        assert_eq!(p.token().await.unwrap().secret(), "t1");
        clock.advance(Duration::from_secs(2));
        assert_eq!(p.token().await.unwrap().secret(), "t2");
    }

    #[tokio::test]
    async fn many_rejections_of_one_token_refresh_once() {
        let (p, calls, _) = provider(3600);
        let first = p.token().await.unwrap();
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let p = p.clone();
                let r = first.clone();
                tokio::spawn(async move { p.refresh_after_rejection(&r).await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().secret(), "t2");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // a report of the new token refreshes again
        let second = p.token().await.unwrap();
        assert_eq!(p.refresh_after_rejection(&second).await.unwrap().secret(), "t3");
    }
}
