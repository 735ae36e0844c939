//! The device-code flow (reference `entra-id-oauth.md` §5): ask for a code, show the message,
//! poll the token endpoint every `interval` seconds (5 when not given), add 5 seconds on
//! `slow_down`, keep going on `authorization_pending`, stop on `expired_token`,
//! `authorization_declined` and any other error, and give up when the code expires.

use std::time::Duration;

use crate::AuthError;
use crate::clock::Clock;
use crate::options::{DeviceCodePrompt, DeviceCodeSink};
use crate::token_client::{DevicePoll, TokenClient, TokenResponse};

/// Runs the device-code sign-in.
pub async fn sign_in(
    client: &TokenClient,
    scope: &str,
    show: &DeviceCodeSink,
    clock: &dyn Clock,
) -> Result<TokenResponse, AuthError> {
    let code = client.device_code(scope).await?;
    let expires_in = Duration::from_secs(code.expires_in.max(1));
    let prompt = DeviceCodePrompt {
        user_code: code.user_code.clone(),
        verification_uri: code.verification_uri.clone(),
        message: code.message.clone().unwrap_or_else(|| {
            format!("To sign in, open {} and enter the code {}.", code.verification_uri, code.user_code)
        }),
        expires_in,
    };
    show(&prompt);
    let deadline = clock.now() + expires_in;
    let mut interval = Duration::from_secs(code.interval.unwrap_or(5).max(1));
    loop {
        clock.sleep(interval).await;
        if clock.now() > deadline {
            return Err(AuthError::TimedOut(format!(
                "the device code expired after {} s without a sign-in: run the sign-in again and enter the code at {}",
                expires_in.as_secs(),
                code.verification_uri
            )));
        }
        match client.poll_device_code(&code).await? {
            DevicePoll::Pending => tracing::trace!("device code: authorization pending"),
            DevicePoll::SlowDown => {
                interval += Duration::from_secs(5);
                tracing::debug!(interval_secs = interval.as_secs(), "device code: slow down");
            }
            DevicePoll::Done(t) => return Ok(t),
        }
    }
}
