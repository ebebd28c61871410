//! The gateway: axum REST `/api/v1`, WebSocket signaling `/ws` and the browser
//! client's static files. Not built yet: it arrives with the REST API issue.
