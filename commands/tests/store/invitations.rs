//! An invitation's lifecycle through the command bus on a real stream: issued to
//! an email address, bound to the account registered with it, accepted, and seen
//! the same by a second process; inviting again stores nothing.

use rapat_commands::{CommandBus, CommandMetadata};
use rapat_domain::account::Email;
use rapat_domain::ids::{RoomId, UserId};
use rapat_domain::invitation::{Invitation, InvitationCommand, InvitationEvent, InvitationStatus, Invitee};

use crate::support::TestStore;

#[tokio::test]
async fn an_email_invitation_is_bound_accepted_and_read_back() {
    let test = TestStore::new().await;
    let bus = CommandBus::new(test.open::<Invitation>().await, ());
    let (room, host, guest) = (RoomId::new_random(), UserId::new_random(), UserId::new_random());
    let invitee = Invitee::Email(Email::parse("Dewi@Example.com".to_owned()).expect("an email"));
    let id = Invitation::id_for(room, &invitee).to_string();
    let issue = InvitationCommand::Issue { room, host, invitee };

    let issued = bus.execute(&id, issue.clone(), CommandMetadata::by(host.to_string())).await.expect("issued");
    assert!(matches!(issued.events[..], [InvitationEvent::InvitationIssued { .. }]));
    let again = bus.execute(&id, issue, CommandMetadata::by(host.to_string())).await.expect("issued again");
    assert!(again.events.is_empty(), "inviting the same address again stores nothing");
    assert_eq!(again.stream_sequence, issued.stream_sequence);

    let answer = InvitationCommand::Accept { by: guest };
    let refused = bus.execute(&id, answer.clone(), CommandMetadata::by(guest.to_string())).await;
    assert!(refused.is_err(), "an unbound email invitation has nobody to answer it");
    bus.execute(&id, InvitationCommand::BindAccount { account: guest }, CommandMetadata::system())
        .await
        .expect("bound");
    bus.execute(&id, answer, CommandMetadata::by(guest.to_string())).await.expect("accepted");

    // A second process, with nothing cached, sees the same invitation.
    let loaded = test.open::<Invitation>().await.load(&id).await.expect("loads");
    let invitation = loaded.state.aggregate;
    assert_eq!(loaded.state.version, 3);
    assert_eq!(invitation.status(), InvitationStatus::Accepted);
    assert_eq!(invitation.room(), Some(room));
    assert_eq!(invitation.email().map(Email::as_str), Some("dewi@example.com"));
    assert!(invitation.admits(guest));
    assert!(!invitation.admits(host));
}
