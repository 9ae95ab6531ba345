//! The Docker Engine API over its unix socket (bollard): the running containers, one
//! container's inspect document, and the event stream.
//!
//! The client starts at bollard's API version (1.53) and negotiates down to the daemon's, so
//! it speaks 1.44+ to engines that require it (Docker 29 refuses older clients) and 1.41 to a
//! Docker 20.10 engine. Containers are read as inspect JSON ([`Container::from_inspect`]).

use std::collections::HashMap;
use std::pin::Pin;

use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use futures_util::{Stream, StreamExt};

use super::container::Container;

/// Time limit of a list or inspect request, seconds.
const REQUEST_TIMEOUT: u64 = 30;
/// The event stream's connection has no useful time limit (a quiet host sends nothing for
/// hours); a year.
const STREAM_TIMEOUT: u64 = 365 * 24 * 3600;

/// A connected Docker API client.
#[derive(Clone)]
pub struct Docker {
    api: bollard::Docker,
    socket: String,
    /// `<engine version> (API <negotiated version>)`.
    pub describe: String,
}

/// The event stream: events, or the error that broke it.
pub type Events = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// Something happened to a container: re-read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The container's ID.
    pub id: String,
    /// Docker's action: `start`, `die`, `pause`, `health_status: healthy`, `connect`, ...
    pub action: String,
}

/// The container events that can change what is registered.
pub const CONTAINER_EVENTS: [&str; 8] = [
    "start",
    "die",
    "pause",
    "unpause",
    "health_status",
    "destroy",
    "rename",
    "update",
];

fn error(what: &str, socket: &str, e: impl std::fmt::Display) -> String {
    format!("docker {socket}: {what}: {e}")
}

impl Docker {
    /// Connect and negotiate the API version (one `GET /version`).
    pub async fn connect(socket: &str) -> Result<Docker, String> {
        let api = bollard::Docker::connect_with_unix(
            socket,
            REQUEST_TIMEOUT,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| error("connect", socket, e))?
        .negotiate_version()
        .await
        .map_err(|e| error("GET /version", socket, e))?;
        let version = api
            .version()
            .await
            .map_err(|e| error("GET /version", socket, e))?;
        let negotiated = api.client_version();
        Ok(Docker {
            describe: format!(
                "Docker {} (API {})",
                version.version.as_deref().unwrap_or("?"),
                negotiated
            ),
            api,
            socket: socket.to_string(),
        })
    }

    /// IDs of the running (and paused) containers, only those on one of `networks` when it
    /// is not empty.
    pub async fn running(&self, networks: &[String]) -> Result<Vec<String>, String> {
        let mut filters = HashMap::new();
        filters.insert(
            "status".to_string(),
            vec!["running".to_string(), "paused".to_string()],
        );
        if !networks.is_empty() {
            filters.insert("network".to_string(), networks.to_vec());
        }
        let list = self
            .api
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| error("GET /containers/json", &self.socket, e))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// The container, or `None` when it no longer exists.
    pub async fn inspect(&self, id: &str) -> Result<Option<Container>, String> {
        match self
            .api
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(doc) => {
                let json = serde_json::to_value(&doc)
                    .map_err(|e| error(&format!("inspect {id}"), &self.socket, e))?;
                Container::from_inspect(&json)
                    .map(Some)
                    .map_err(|e| error(&format!("inspect {id}"), &self.socket, e))
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(error(
                &format!("GET /containers/{id}/json"),
                &self.socket,
                e,
            )),
        }
    }

    /// The container and network events that concern containers, from `since` (Unix
    /// seconds; Docker replays the earlier ones it still has) on. The stream
    /// ends (or yields an error) when the connection breaks; the caller reconnects and
    /// resyncs, since events may have been missed.
    pub fn events(&self, since: i64) -> Result<Events, String> {
        let api = bollard::Docker::connect_with_unix(
            &self.socket,
            STREAM_TIMEOUT,
            &self.api.client_version(),
        )
        .map_err(|e| error("connect", &self.socket, e))?;
        let mut filters = HashMap::new();
        filters.insert(
            "type".to_string(),
            vec!["container".to_string(), "network".to_string()],
        );
        let mut events: Vec<String> = CONTAINER_EVENTS.iter().map(|s| s.to_string()).collect();
        events.extend(["connect".to_string(), "disconnect".to_string()]);
        filters.insert("event".to_string(), events);
        let socket = self.socket.clone();
        let stream = api
            .events(Some(EventsOptions {
                since: Some(since.to_string()),
                filters: Some(filters),
                ..Default::default()
            }))
            .filter_map(move |item| {
                let socket = socket.clone();
                async move {
                    match item {
                        Ok(m) => event_of(&m).map(Ok),
                        Err(e) => Some(Err(error("GET /events", &socket, e))),
                    }
                }
            });
        Ok(Box::pin(stream))
    }
}

/// The container an event is about: the actor of a container event, the `container`
/// attribute of a network event.
fn event_of(m: &bollard::models::EventMessage) -> Option<Event> {
    use bollard::models::EventMessageTypeEnum as T;
    let actor = m.actor.as_ref()?;
    let action = m.action.clone().unwrap_or_default();
    let id = match m.typ {
        Some(T::CONTAINER) => actor.id.clone()?,
        Some(T::NETWORK) => actor.attributes.as_ref()?.get("container")?.clone(),
        _ => return None,
    };
    Some(Event { id, action })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{EventActor, EventMessage, EventMessageTypeEnum};

    fn msg(typ: EventMessageTypeEnum, id: &str, attrs: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some("connect".into()),
            actor: Some(EventActor {
                id: Some(id.into()),
                attributes: Some(
                    attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn events_name_the_container_they_are_about() {
        let e = event_of(&msg(EventMessageTypeEnum::CONTAINER, "c1", &[])).unwrap();
        assert_eq!(e.id, "c1");
        let e = event_of(&msg(
            EventMessageTypeEnum::NETWORK,
            "net1",
            &[("container", "c2"), ("name", "apps")],
        ))
        .unwrap();
        assert_eq!(e.id, "c2");
        assert_eq!(
            event_of(&msg(
                EventMessageTypeEnum::NETWORK,
                "net1",
                &[("name", "apps")]
            )),
            None
        );
        assert_eq!(
            event_of(&msg(EventMessageTypeEnum::IMAGE, "sha256:1", &[])),
            None
        );
    }
}
