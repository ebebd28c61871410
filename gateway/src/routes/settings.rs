//! `/users/settings` (SPEC §6): the caller's time zone, locale, reminder lead and
//! notification channels per kind, a `UserSettings` aggregate whose id is the
//! user's id. Answers carry every setting, the defaults filled in.

use axum::extract::State;
use axum::response::Response;
use rapat_domain::settings::{
    Channels, EffectiveSettings, Locale, NotificationKind, ReminderMinutes, SettingsChanges, SettingsCommand, Timezone,
};
use rapat_projections::queries;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::response::{self, Data, Failure};
use crate::routes::schema;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, update_settings))
}

/// Where one kind of notification goes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelsView {
    pub in_app: bool,
    pub email: bool,
    pub push: bool,
}

impl From<Channels> for ChannelsView {
    fn from(channels: Channels) -> Self {
        Self { in_app: channels.in_app, email: channels.email, push: channels.push }
    }
}

impl From<ChannelsView> for Channels {
    fn from(view: ChannelsView) -> Self {
        Self { in_app: view.in_app, email: view.email, push: view.push }
    }
}

/// The channels of each notification kind. In a request every kind is optional
/// (left out: unchanged) and a kind's channels are given whole; another key is
/// refused.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct NotificationsView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_invitation: Option<ChannelsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation_accepted: Option<ChannelsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation_declined: Option<ChannelsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_reminder: Option<ChannelsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_started: Option<ChannelsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_rescheduled: Option<ChannelsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_cancelled: Option<ChannelsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_added: Option<ChannelsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_from_room: Option<ChannelsView>,
}

impl NotificationsView {
    fn slot(&mut self, kind: NotificationKind) -> &mut Option<ChannelsView> {
        match kind {
            NotificationKind::RoomInvitation => &mut self.room_invitation,
            NotificationKind::InvitationAccepted => &mut self.invitation_accepted,
            NotificationKind::InvitationDeclined => &mut self.invitation_declined,
            NotificationKind::MeetingReminder => &mut self.meeting_reminder,
            NotificationKind::MeetingStarted => &mut self.meeting_started,
            NotificationKind::MeetingRescheduled => &mut self.meeting_rescheduled,
            NotificationKind::MeetingCancelled => &mut self.meeting_cancelled,
            NotificationKind::ContactAdded => &mut self.contact_added,
            NotificationKind::RemovedFromRoom => &mut self.removed_from_room,
        }
    }
}

/// A user's settings, every one filled in (defaults: `UTC`, `en`, 10 minutes,
/// in-app and email on for every kind, push off).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    /// An IANA time zone name.
    pub timezone: String,
    /// A language tag.
    pub locale: String,
    /// How long before a scheduled meeting its reminder goes out.
    pub reminder_minutes: u32,
    /// Every kind.
    pub notifications: NotificationsView,
}

impl From<EffectiveSettings> for SettingsView {
    fn from(settings: EffectiveSettings) -> Self {
        let mut notifications = NotificationsView::default();
        for (kind, channels) in settings.notifications {
            *notifications.slot(kind) = Some(channels.into());
        }
        Self {
            timezone: settings.timezone.as_str().to_owned(),
            locale: settings.locale.as_str().to_owned(),
            reminder_minutes: settings.reminder_minutes.get(),
            notifications,
        }
    }
}

/// Settings to change: any subset; what is left out keeps its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSettingsRequest {
    /// An IANA time zone name, such as `Asia/Jakarta` or `UTC`.
    #[schema(min_length = 1, max_length = 64)]
    pub timezone: Option<String>,
    /// A language tag such as `en`, `id` or `pt-BR`: a language of 2–3 letters,
    /// then up to three subtags of 2–8 letters or digits.
    #[schema(min_length = 2, max_length = 35, pattern = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")]
    pub locale: Option<String>,
    /// Minutes before a scheduled meeting that its reminder goes out.
    #[serde(default, deserialize_with = "schema::optional_whole_number")]
    #[schema(minimum = 0, maximum = 1440)]
    pub reminder_minutes: Option<u32>,
    pub notifications: Option<NotificationsView>,
}

impl UpdateSettingsRequest {
    fn parse(self) -> Result<SettingsChanges, ApiError> {
        let mut notifications = self.notifications.unwrap_or_default();
        Ok(SettingsChanges {
            timezone: self.timezone.as_deref().map(Timezone::parse).transpose()?,
            locale: self.locale.as_deref().map(Locale::parse).transpose()?,
            reminder_minutes: self.reminder_minutes.map(ReminderMinutes::parse).transpose()?,
            notifications: NotificationKind::ALL
                .iter()
                .filter_map(|kind| notifications.slot(*kind).take().map(|channels| (*kind, channels.into())))
                .collect(),
        })
    }
}

/// The caller's settings, defaults filled in.
#[utoipa::path(
    get,
    path = "/users/settings",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`data` is every setting", body = Data<SettingsView>),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
    )
)]
async fn get_settings(State(state): State<AppState>, auth: AuthUser) -> Result<Response, ApiError> {
    Ok(response::ok(SettingsView::from(queries::settings::effective(&state.db, auth.user_id).await?)))
}

/// Changes some of the caller's settings.
#[utoipa::path(
    put,
    path = "/users/settings",
    tag = "users",
    security(("bearer" = [])),
    request_body = UpdateSettingsRequest,
    responses(
        (status = 200, description = "`data` is every setting after the change", body = Data<SettingsView>),
        (status = 400, description = "an unknown time zone, a malformed locale, reminderMinutes outside 0..=1440, an unknown notification kind or field, or a kind's channels not given whole", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
    )
)]
async fn update_settings(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<UpdateSettingsRequest>,
) -> Result<Response, ApiError> {
    let changes = body.parse()?;
    let command = SettingsCommand::Update { user: auth.user_id, changes };
    state.write(&state.settings, &auth.user_id.to_string(), command, auth.command()).await?;
    Ok(response::ok(SettingsView::from(queries::settings::effective(&state.db, auth.user_id).await?)))
}
