//! `users`, from account events.

use rapat_domain::envelope::StoredEvent;
use serde::Deserialize;
use sqlx::PgConnection;

use super::{ApplyError, aggregate_uuid, check_found, check_version, payload, unknown};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Registered {
    email: String,
    password_hash: String,
    first_name: String,
    last_name: String,
    /// Version 1 had no role: every account then was a member.
    #[serde(default = "member")]
    role: String,
}

fn member() -> String {
    "member".to_owned()
}

/// Only what changed is present.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileUpdated {
    first_name: Option<String>,
    last_name: Option<String>,
    avatar: Option<String>,
    #[serde(default)]
    avatar_removed: bool,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordChanged {
    password_hash: String,
}

#[derive(Deserialize)]
struct StatusChanged {
    status: String,
}

#[derive(Deserialize)]
struct RoleGranted {
    role: String,
}

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let id = aggregate_uuid(event)?;
    let at = event.timestamp;
    let rows = match event.event_type.as_str() {
        "AccountRegistered" => {
            check_version(event, 2)?;
            let e: Registered = payload(event)?;
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, first_name, last_name, avatar, status, role, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL, 'active', $6, $7, $7)",
            )
            .bind(id)
            .bind(e.email)
            .bind(e.password_hash)
            .bind(e.first_name)
            .bind(e.last_name)
            .bind(e.role)
            .bind(at)
            .execute(tx)
            .await?
        }
        "ProfileUpdated" => {
            check_version(event, 1)?;
            let e: ProfileUpdated = payload(event)?;
            sqlx::query(
                "UPDATE users SET first_name = COALESCE($2, first_name), last_name = COALESCE($3, last_name), \
                 avatar = CASE WHEN $5 THEN NULL ELSE COALESCE($4, avatar) END, \
                 status = COALESCE($6, status), updated_at = $7 WHERE id = $1",
            )
            .bind(id)
            .bind(e.first_name)
            .bind(e.last_name)
            .bind(e.avatar)
            .bind(e.avatar_removed)
            .bind(e.status)
            .bind(at)
            .execute(tx)
            .await?
        }
        "PasswordChanged" => {
            check_version(event, 1)?;
            let e: PasswordChanged = payload(event)?;
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(e.password_hash)
                .bind(at)
                .execute(tx)
                .await?
        }
        "StatusChanged" => {
            check_version(event, 1)?;
            let e: StatusChanged = payload(event)?;
            sqlx::query("UPDATE users SET status = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(e.status)
                .bind(at)
                .execute(tx)
                .await?
        }
        "RoleGranted" => {
            check_version(event, 1)?;
            let e: RoleGranted = payload(event)?;
            sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(e.role)
                .bind(at)
                .execute(tx)
                .await?
        }
        "RegistrationAbandoned" => {
            // An account that was never registered: it has no row, and gets none.
            check_version(event, 1)?;
            return Ok(());
        }
        _ => return unknown(event),
    };
    check_found(rows.rows_affected(), event);
    Ok(())
}
