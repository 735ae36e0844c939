//! One module per sign-in flow.

pub mod adfs;
pub mod app_only;
pub mod auth_code;
pub mod delegated;
pub mod device_code;
pub mod loopback;
pub mod managed_identity;
