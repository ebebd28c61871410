//! Every read model and query, from the realistic story.

use std::time::Duration;

use rapat_domain::ids::{RoomId, UserId};
use rapat_projections::queries::{RoomStatus, audit, contacts, rooms, sessions, users};

use crate::story::{self, AVATAR};
use crate::support::{TestEnv, now};

#[tokio::test]
async fn every_read_model_follows_the_story() {
    let env = TestEnv::new().await;
    let story = story::tell(&env).await;
    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(20)).await;
    let pool = &env.pool;

    // Users.
    let ana = users::by_id(pool, story.ana).await.expect("query").expect("ana exists");
    assert_eq!((ana.first_name.as_str(), ana.last_name.as_str()), ("Ana Maria", "Wijaya"));
    assert_eq!(ana.avatar, None, "the second update removed the avatar");
    assert_eq!((ana.status.as_str(), ana.role.as_str()), ("busy", "admin"));
    assert!(ana.updated_at > ana.created_at);
    let budi = users::by_email(pool, "budi@example.com").await.expect("query").expect("budi exists");
    assert_eq!(budi.id, story.budi);
    assert_eq!(budi.avatar.as_deref(), Some(AVATAR));
    assert_eq!(budi.password_hash, "$argon2id$budi-2");
    let dewi = users::by_id(pool, story.dewi).await.expect("query").expect("dewi exists");
    assert_eq!(
        (dewi.role.as_str(), dewi.status.as_str()),
        ("member", "active"),
        "a version-1 registration is a member"
    );
    assert_eq!(users::by_email(pool, "nobody@example.com").await.expect("query"), None);
    let mut some = users::by_ids(pool, &[story.citra, story.dewi, UserId::new_random()]).await.expect("query");
    some.sort_by(|a, b| a.first_name.cmp(&b.first_name));
    let names: Vec<_> = some.iter().map(|user| (user.first_name.as_str(), user.status.as_str())).collect();
    assert_eq!(names, [("Citra", "away"), ("Dewi", "active")]);

    // Contacts, ordered by name.
    let list = contacts::of(pool, story.ana).await.expect("query");
    let ids: Vec<_> = list.iter().map(|user| user.id).collect();
    assert_eq!(ids, [story.budi, story.citra]);
    assert!(contacts::of(pool, story.budi).await.expect("query").is_empty());

    // The ended standup.
    let standup = rooms::by_id(pool, story.standup).await.expect("query").expect("exists");
    assert_eq!(standup.status, RoomStatus::Ended);
    assert_eq!((standup.name.as_str(), standup.max_users, standup.has_password), ("Daily standup", 5, false));
    assert_eq!(standup.participant_count, 0);
    assert!(standup.ended_at.is_some());
    let stays: Vec<(uuid::Uuid, Option<String>)> =
        sqlx::query_as("SELECT user_id, left_reason FROM participants WHERE room_id = $1 ORDER BY id")
            .bind(story.standup.as_uuid())
            .fetch_all(pool)
            .await
            .expect("query");
    let reason = |user: UserId, reason: &str| (user.as_uuid(), Some(reason.to_owned()));
    assert_eq!(
        stays,
        [
            reason(story.ana, "room_ended"),
            reason(story.budi, "left"),
            reason(story.citra, "removed"),
            reason(story.budi, "room_ended")
        ]
    );
    assert!(rooms::current_participants(pool, story.standup).await.expect("query").is_empty());

    // The review, still going.
    let review = rooms::by_id(pool, story.review).await.expect("query").expect("exists");
    assert_eq!((review.status, review.participant_count, review.has_password), (RoomStatus::Active, 3, false));
    assert_eq!(review.host_id, story.budi);
    let present = rooms::current_participants(pool, story.review).await.expect("query");
    let state: Vec<_> = present
        .iter()
        .map(|p| (p.user_id, p.first_name.as_deref(), p.audio_muted, p.muted_by_host, p.video_on, p.screen_sharing))
        .collect();
    assert_eq!(
        state,
        [
            (story.budi, Some("Budi"), false, false, false, false),
            (story.ana, Some("Ana Maria"), false, false, false, false),
            (story.dewi, Some("Dewi"), true, true, true, false),
        ]
    );

    // Who sees which rooms.
    let ids = |rows: Vec<rooms::RoomRow>| rows.into_iter().map(|room| room.id).collect::<Vec<RoomId>>();
    let active = |user| async move { rooms::active_page_for(pool, user, 1, 100).await.expect("query").0 };
    assert_eq!(ids(active(story.ana).await), [story.review]);
    assert_eq!(ids(active(story.budi).await), [story.review]);
    assert!(active(story.citra).await.is_empty());
    let (page, total) = rooms::history_for(pool, story.citra, 1, 1).await.expect("query");
    assert_eq!((ids(page), total), (vec![story.empty], 2), "most recently ended first");
    let (page, total) = rooms::history_for(pool, story.citra, 2, 1).await.expect("query");
    assert_eq!((ids(page), total), (vec![story.standup], 2));
    let (page, total) = rooms::history_for(pool, story.dewi, 1, 10).await.expect("query");
    assert_eq!((page.len(), total), (0, 0), "the review has not ended");
    assert!(rooms::has_ever_joined(pool, story.standup, story.citra).await.expect("query"));
    assert!(!rooms::has_ever_joined(pool, story.review, story.citra).await.expect("query"));
    assert_eq!(rooms::by_id(pool, RoomId::new_random()).await.expect("query"), None);

    // What a join answers: the room and the caller's latest stay, in one read.
    let (room, stay) = rooms::with_latest_stay(pool, story.review, story.dewi).await.expect("query").expect("exists");
    assert_eq!(room, review);
    let stay = stay.expect("dewi is in the review");
    assert_eq!((stay.user_id, stay.audio_muted, stay.muted_by_host, stay.video_on), (story.dewi, true, true, true));
    assert_eq!(Some(stay), rooms::latest_stay(pool, story.review, story.dewi).await.expect("query"));
    let (room, stay) = rooms::with_latest_stay(pool, story.standup, story.budi).await.expect("query").expect("exists");
    assert_eq!(room, standup);
    assert_eq!(stay, rooms::latest_stay(pool, story.standup, story.budi).await.expect("query"), "an ended stay too");
    assert!(stay.is_some());
    let (_, stay) = rooms::with_latest_stay(pool, story.review, story.citra).await.expect("query").expect("exists");
    assert_eq!(stay, None, "citra was never in the review");
    assert_eq!(rooms::with_latest_stay(pool, RoomId::new_random(), story.ana).await.expect("query"), None);

    // Sessions.
    let revoked = sessions::by_id(pool, story.ana_session).await.expect("query").expect("exists");
    assert_eq!((revoked.user_id, revoked.generation, revoked.refresh_hash.as_str()), (story.ana, 1, "hash-1"));
    assert_eq!(revoked.revoked_reason.as_deref(), Some("logout"));
    assert!(revoked.refreshed_at.is_some() && !revoked.is_active(now()));
    let active_session = sessions::by_id(pool, story.budi_session).await.expect("query").expect("exists");
    assert!(active_session.is_active(now()));
    assert!(!active_session.is_active(active_session.expires_at));

    // The audit trail: every event, an aggregate's in version order, paginated.
    assert_eq!(env.count("SELECT count(*) FROM audit_events").await, story.events as i64);
    let standup_id = story.standup.to_string();
    let (first, total) = audit::for_aggregate(pool, "room", &standup_id, 1, 4).await.expect("query");
    assert_eq!(total, 10);
    let versions: Vec<_> = first.iter().map(|row| (row.aggregate_version, row.event_type.as_str())).collect();
    assert_eq!(
        versions,
        [(1, "RoomCreated"), (2, "ParticipantJoined"), (3, "ParticipantJoined"), (4, "ParticipantJoined")]
    );
    assert_eq!(first[0].payload["hostId"], serde_json::json!(story.ana.to_string()));
    let (last, _) = audit::for_aggregate(pool, "room", &standup_id, 3, 4).await.expect("query");
    let versions: Vec<_> = last.iter().map(|row| row.aggregate_version).collect();
    assert_eq!(versions, [9, 10]);
    assert_eq!(env.count("SELECT count(*) FROM parked_events").await, 0);

    projector.stop().await;
}

/// `email_claims`: a claim is pending until confirmed or released, a released
/// address can be claimed again (a new claim version), and a version-1 claim
/// (from before confirmations) counts as confirmed.
#[tokio::test]
async fn email_claims_follow_claims_confirmations_and_releases() {
    use rapat_domain::account::{Email, EmailClaimEvent};
    use rapat_projections::queries::email_claims::{self, ClaimState};

    let env = TestEnv::new().await;
    let email = |address: &str| Email::parse(address.to_owned()).expect("valid email");
    let (ana, budi, citra) = (UserId::new_random(), UserId::new_random(), UserId::new_random());
    let claimed = |address: &str, account: UserId| EmailClaimEvent::EmailClaimed {
        email: email(address),
        account_id: account,
        claimed_at: Some(now()),
    };
    let ana_claim = email("ana@example.com").claim_id();
    env.append("email", ana_claim, &[claimed("ana@example.com", ana)]).await;
    env.append("email", ana_claim, &[EmailClaimEvent::EmailClaimConfirmed { account_id: ana }]).await;
    let shared = email("shared@example.com").claim_id();
    env.append("email", shared, &[claimed("shared@example.com", budi)]).await;
    env.append("email", shared, &[EmailClaimEvent::EmailClaimReleased { account_id: budi }]).await;
    env.append("email", shared, &[claimed("shared@example.com", citra)]).await;
    let pending = email("pending@example.com").claim_id();
    env.append("email", pending, &[claimed("pending@example.com", budi)]).await;
    let old = email("old@example.com").claim_id();
    let v1 = serde_json::json!({ "email": "old@example.com", "accountId": ana });
    env.append_raw("email", old, vec![("EmailClaimed".into(), 1, v1)]).await;

    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(Duration::from_secs(20)).await;
    let pool = env.pool.clone();
    let row = |claim_id| {
        let pool = pool.clone();
        async move {
            let row = email_claims::by_id(&pool, claim_id).await.expect("query").expect("a row");
            (row.account_id, row.state, row.claim_version)
        }
    };
    assert_eq!(row(ana_claim).await, (ana, ClaimState::Confirmed, 1));
    assert_eq!(row(shared).await, (citra, ClaimState::Pending, 3));
    assert_eq!(row(pending).await, (budi, ClaimState::Pending, 1));
    assert_eq!(row(old).await, (ana, ClaimState::Confirmed, 1));

    let later = now() + chrono::Duration::seconds(1);
    let mut waiting: Vec<_> = email_claims::pending_before(&env.pool, later, 10)
        .await
        .expect("query")
        .into_iter()
        .map(|claim| claim.email)
        .collect();
    waiting.sort();
    assert_eq!(waiting, ["pending@example.com", "shared@example.com"]);
    assert!(
        email_claims::pending_before(&env.pool, now() - chrono::Duration::hours(1), 10)
            .await
            .expect("query")
            .is_empty()
    );
    projector.stop().await;
}
