//! Recording a room (SPEC §10): the host starts and stops it, lists the recorded
//! track files and downloads them. Starting and stopping are commands on the room
//! (the aggregate checks the host and answers 409 when recording already is on or
//! off); the list and the download read the `track_recordings` read model, and a
//! download streams the file from the recording store with Range support.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rapat_domain::ids::{RoomId, TrackRecordingId};
use rapat_domain::room::RoomCommand;
use rapat_projections::queries;
use rapat_projections::queries::recordings::TrackRecordingRow;
use rapat_recording::{Download, RecordingKey};
use serde::Serialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use utoipa::ToSchema;
use uuid::Uuid;

use super::views::RoomView;
use super::{hosted_room_row, written_room_row};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::response::{self, Data, Failure};
use crate::state::AppState;

/// One recorded track: one publication of one participant's audio or video.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackRecordingView {
    pub id: Uuid,
    /// The participant whose track it is.
    pub user_id: Uuid,
    #[schema(pattern = "^(audio|video)$")]
    pub kind: String,
    /// `opus` (an Ogg file) or `vp8` (a WebM file).
    #[schema(pattern = "^(opus|vp8)$")]
    pub codec: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub bytes: u64,
}

impl From<TrackRecordingRow> for TrackRecordingView {
    fn from(row: TrackRecordingRow) -> Self {
        Self {
            id: row.id.as_uuid(),
            user_id: row.user_id.as_uuid(),
            kind: row.codec.kind().as_str().to_owned(),
            codec: row.codec.as_str().to_owned(),
            started_at: row.started_at,
            duration_ms: row.duration_ms,
            bytes: row.bytes,
        }
    }
}

/// Start recording every published track of the room (host only). Every
/// participant gets `{"type": "recording", "payload": {"active": true}}`.
#[utoipa::path(
    post,
    path = "/rooms/{roomId}/recording/start",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "The room, `recording: true`", body = Data<RoomView>),
        (status = 400, description = "Malformed room id", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not the host", body = Failure),
        (status = 404, description = "No such room", body = Failure),
        (status = 409, description = "Already recording, or the room has ended", body = Failure),
    )
)]
pub async fn start_recording(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let command = RoomCommand::StartRecording { actor: auth.user_id };
    state.write(&state.rooms, &room_id.to_string(), command, auth.command()).await?;
    Ok(response::ok(RoomView::from(written_room_row(&state, room_id).await?)))
}

/// Stop recording (host only). Files of tracks still being written are listed
/// once the media server has closed them.
#[utoipa::path(
    post,
    path = "/rooms/{roomId}/recording/stop",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "The room, `recording: false`", body = Data<RoomView>),
        (status = 400, description = "Malformed room id", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not the host", body = Failure),
        (status = 404, description = "No such room", body = Failure),
        (status = 409, description = "Not recording, or the room has ended", body = Failure),
    )
)]
pub async fn stop_recording(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let command = RoomCommand::StopRecording { actor: auth.user_id };
    state.write(&state.rooms, &room_id.to_string(), command, auth.command()).await?;
    Ok(response::ok(RoomView::from(written_room_row(&state, room_id).await?)))
}

/// The room's recorded tracks that are still kept, oldest first (host only).
#[utoipa::path(
    get,
    path = "/rooms/{roomId}/recordings",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "One entry per recorded track", body = Data<Vec<TrackRecordingView>>),
        (status = 400, description = "Malformed room id", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not the host", body = Failure),
        (status = 404, description = "No such room", body = Failure),
    )
)]
pub async fn list_recordings(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    hosted_room_row(&state, &auth, room_id).await?;
    let rows = queries::recordings::for_room(&state.db, RoomId::from_uuid(room_id)).await?;
    Ok(response::ok(rows.into_iter().map(TrackRecordingView::from).collect::<Vec<_>>()))
}

/// One recorded track's file (host only): `audio/ogg` for Opus, `video/webm` for
/// VP8. Honours `Range` (206, or 416 for a range outside the file).
#[utoipa::path(
    get,
    path = "/rooms/{roomId}/recordings/{id}",
    tag = "rooms",
    security(("bearer" = [])),
    params(
        ("roomId" = Uuid, Path, description = "The room's id"),
        ("id" = Uuid, Path, description = "The track recording's id"),
    ),
    responses(
        (status = 200, description = "The whole file", content(
            (Vec<u8> = "audio/ogg"),
            (Vec<u8> = "video/webm"),
        )),
        (status = 206, description = "The requested range of the file", content(
            (Vec<u8> = "audio/ogg"),
            (Vec<u8> = "video/webm"),
        )),
        (status = 400, description = "Malformed id", body = Failure),
        (status = 401, description = "Missing or invalid token", body = Failure),
        (status = 403, description = "The caller is not the host", body = Failure),
        (status = 404, description = "No such room or recording, or the recording expired", body = Failure),
        (status = 416, description = "The range is outside the file"),
    )
)]
pub async fn download_recording(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((room_id, id)): ApiPath<(Uuid, Uuid)>,
    request: Request,
) -> Result<Response, ApiError> {
    hosted_room_row(&state, &auth, room_id).await?;
    let room = RoomId::from_uuid(room_id);
    let not_found = || ApiError::not_found("recording_not_found", "no such recording in this room, or it expired");
    let row =
        queries::recordings::by_id(&state.db, room, TrackRecordingId::from_uuid(id)).await?.ok_or_else(not_found)?;
    let key = RecordingKey::for_track(room, row.id, row.codec);
    let store = state.recordings.clone();
    let lookup = tokio::task::spawn_blocking(move || store.download(&key)).await.map_err(ApiError::internal)?;
    let Some(Download::LocalFile { path, .. }) = lookup.map_err(ApiError::unavailable)? else {
        return Err(not_found());
    };
    let served = ServeFile::new(path).oneshot(request).await.map_err(ApiError::internal)?;
    let mut answer = served.map(Body::new).into_response();
    if answer.status().is_success() {
        // The codec decides the type, not the file name's guess.
        answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(row.codec.content_type()));
    }
    let disposition = format!("attachment; filename=\"{id}.{}\"", row.codec.file_extension());
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        answer.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(answer)
}
