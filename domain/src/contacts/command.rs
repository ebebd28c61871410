//! What can be asked of a contact list. `owner` travels with each command so the
//! list can refuse one routed to the wrong aggregate.

use crate::ids::UserId;

#[derive(Clone, Debug)]
pub enum ContactListCommand {
    Add { owner: UserId, contact: UserId },
    Remove { owner: UserId, contact: UserId },
}
