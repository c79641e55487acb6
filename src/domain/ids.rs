//! The identifiers a call's story passes around: [`CallId`], [`TenantId`],
//! [`NumberId`], [`WidgetId`] and [`RecordingId`]. Each is its own type, so
//! one cannot be handed where another is meant; each reads as the text it
//! wraps (`Deref<Target = str>`), is written (serde) and stored (sqlx) as
//! that text, and is made from it.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            utoipa::ToSchema, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_id!(
    /// A call's id, as its API and its CDR name it.
    CallId
);
text_id!(
    /// A tenant's id.
    TenantId
);
text_id!(
    /// A phone number's id (never the number itself).
    NumberId
);
text_id!(
    /// A widget's id, the public key a customer's page embeds.
    WidgetId
);
text_id!(
    /// A recording's id.
    RecordingId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_text_everywhere() {
        let id = CallId::from("c-1");
        assert_eq!(id, "c-1");
        assert_eq!(id.len(), 3);
        assert_eq!(id.to_string(), "c-1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"c-1\"");
        assert_eq!(serde_json::from_str::<CallId>("\"c-1\"").unwrap(), id);
        let mut calls = std::collections::HashMap::new();
        calls.insert(id.clone(), 1);
        assert_eq!(calls.get("c-1"), Some(&1));
        assert_eq!(String::from(id), "c-1");
    }
}
