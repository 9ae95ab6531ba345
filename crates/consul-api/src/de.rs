//! Serde helpers for Consul's JSON.

use serde::{Deserialize, Deserializer};

/// A field Consul may send as `null` (older versions send `"Tags": null`): null -> default.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
