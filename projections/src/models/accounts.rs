//! `users`, from account events.

use rapat_domain::account::AccountEvent;
use rapat_domain::envelope::StoredEvent;
use sqlx::PgConnection;

use super::{ApplyError, aggregate_uuid, check_found, decode, stored_name};

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    // A version-1 registration (before roles) arrives upcast, as a member.
    let Some(decoded) = decode::<AccountEvent>(event)? else { return Ok(()) };
    let id = aggregate_uuid(event)?;
    let at = event.timestamp;
    let rows = match decoded {
        AccountEvent::AccountRegistered { email, password_hash, first_name, last_name, role } => {
            sqlx::query(
                "INSERT INTO users (id, email, password_hash, first_name, last_name, avatar, status, role, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, NULL, 'active', $6, $7, $7)",
            )
            .bind(id)
            .bind(String::from(email))
            .bind(password_hash.as_phc())
            .bind(String::from(first_name))
            .bind(String::from(last_name))
            .bind(stored_name(&role)?)
            .bind(at)
            .execute(tx)
            .await?
        }
        AccountEvent::ProfileUpdated { first_name, last_name, avatar, avatar_removed, status } => {
            sqlx::query(
                "UPDATE users SET first_name = COALESCE($2, first_name), last_name = COALESCE($3, last_name), \
                 avatar = CASE WHEN $5 THEN NULL ELSE COALESCE($4, avatar) END, \
                 status = COALESCE($6, status), updated_at = $7 WHERE id = $1",
            )
            .bind(id)
            .bind(first_name.map(String::from))
            .bind(last_name.map(String::from))
            .bind(avatar.map(String::from))
            .bind(avatar_removed)
            .bind(status.as_ref().map(stored_name).transpose()?)
            .bind(at)
            .execute(tx)
            .await?
        }
        AccountEvent::PasswordChanged { password_hash } => {
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(password_hash.as_phc())
                .bind(at)
                .execute(tx)
                .await?
        }
        AccountEvent::StatusChanged { status } => {
            sqlx::query("UPDATE users SET status = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(stored_name(&status)?)
                .bind(at)
                .execute(tx)
                .await?
        }
        AccountEvent::RoleGranted { role } => {
            sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(stored_name(&role)?)
                .bind(at)
                .execute(tx)
                .await?
        }
        AccountEvent::PasswordReset { password_hash, .. } => {
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(password_hash.as_phc())
                .bind(at)
                .execute(tx)
                .await?
        }
        AccountEvent::EmailVerified {} => {
            sqlx::query("UPDATE users SET email_verified = TRUE, updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(tx)
                .await?
        }
        // Tokens asked for: the emails come from the outbox (`mail.rs`); the
        // account's row does not change.
        AccountEvent::EmailVerificationRequested { .. } | AccountEvent::PasswordResetRequested { .. } => {
            return Ok(());
        }
        AccountEvent::RegistrationAbandoned {} => {
            // An account that was never registered: it has no row, and gets none.
            return Ok(());
        }
    };
    check_found(rows.rows_affected(), event);
    Ok(())
}
