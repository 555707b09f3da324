//! The PC's signing key registration (`PUT /api/v1/devices/me/key`): the PC sends the
//! public half of the Ed25519 key it signs its USB bundles with; the server keeps it
//! under the device's token.

use serde::{Deserialize, Serialize};

/// What the PC sends.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRegistrationRequest {
    /// The Ed25519 public key, 64 hexadecimal digits.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-fA-F]{64}$"))]
    pub public_key: String,
}

/// The server's answer once the key is the device's.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRegistrationAnswer {
    /// The key now registered (lower-case hex).
    pub public_key: String,
    /// `true` when this request registered it, `false` when it was registered already.
    pub new: bool,
}
