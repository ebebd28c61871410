//! Identifiers. Every aggregate is addressed by a UUID; the newtypes keep a room id
//! from being passed where a user id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// The id of an account, and so of the user who owns it.
    UserId
);
uuid_id!(
    /// The id of a room.
    RoomId
);
uuid_id!(
    /// The id of an invitation: derived from its room and invitee
    /// (`Invitation::id_for`).
    InvitationId
);
uuid_id!(
    /// The id of a webhook endpoint (SPEC §7).
    WebhookId
);
uuid_id!(
    /// The id of one recorded track: one file, from one publication of one
    /// track (SPEC §10).
    TrackRecordingId
);
