//! Shared by the gRPC integration tests: a real server on a loopback port, tonic clients,
//! and small builders for wire messages.
#![allow(dead_code)]

use std::sync::Arc;

use tessera::api::ServerHandle;
use tessera::api::proto::authzed::api::v1 as pb;
use tessera::auth::Auth;
use tessera::consistency::Zookie;
use tessera::model::Revision;
use tessera::service::{ServiceConfig, Tessera};
use tessera::store::Store;
use tessera::store::memory::MemoryStore;
use tonic::transport::{Channel, Endpoint};

pub use pb::permissions_service_client::PermissionsServiceClient;
pub use pb::schema_service_client::SchemaServiceClient;
pub use pb::watch_service_client::WatchServiceClient;

pub struct TestServer {
    pub handle: ServerHandle,
    pub tessera: Arc<Tessera>,
    pub channel: Channel,
}

impl TestServer {
    pub async fn memory() -> TestServer {
        Self::with_store(Arc::new(MemoryStore::new()), ServiceConfig::default()).await
    }

    pub async fn with_store(store: Arc<dyn Store>, config: ServiceConfig) -> TestServer {
        Self::with_auth(store, config, Auth::insecure()).await
    }

    pub async fn with_auth(store: Arc<dyn Store>, config: ServiceConfig, auth: Auth) -> TestServer {
        let tessera = Arc::new(Tessera::new(store, config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = ServerHandle::start(listener, tessera.clone(), Arc::new(auth)).unwrap();
        let channel = Endpoint::from_shared(format!("http://{}", handle.local_addr()))
            .unwrap()
            .connect()
            .await
            .unwrap();
        TestServer {
            handle,
            tessera,
            channel,
        }
    }

    pub fn perms(&self) -> PermissionsServiceClient<Channel> {
        PermissionsServiceClient::new(self.channel.clone())
    }

    pub fn schema(&self) -> SchemaServiceClient<Channel> {
        SchemaServiceClient::new(self.channel.clone())
    }

    pub fn watch(&self) -> WatchServiceClient<Channel> {
        WatchServiceClient::new(self.channel.clone())
    }

    pub async fn write_schema(&self, text: &str) -> pb::ZedToken {
        self.schema()
            .write_schema(pb::WriteSchemaRequest {
                schema: text.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .written_at
            .unwrap()
    }

    /// TOUCHes relationships given in the text syntax; returns the write's token.
    pub async fn touch(&self, rels: &[&str]) -> pb::ZedToken {
        self.write(rels.iter().map(|r| update(Op::Touch, r)).collect())
            .await
            .unwrap()
    }

    pub async fn write(
        &self,
        updates: Vec<pb::RelationshipUpdate>,
    ) -> Result<pb::ZedToken, tonic::Status> {
        Ok(self
            .perms()
            .write_relationships(pb::WriteRelationshipsRequest {
                updates,
                ..Default::default()
            })
            .await?
            .into_inner()
            .written_at
            .unwrap())
    }
}

pub use pb::relationship_update::Operation as Op;

pub fn rel(text: &str) -> pb::Relationship {
    let r = tessera::model::parse_relationship(text).unwrap();
    tessera::api::convert::relationship_to_proto(&r)
}

pub fn rel_text(r: &pb::Relationship) -> String {
    let r = tessera::api::convert::relationship("r", Some(r)).unwrap();
    r.to_string()
}

pub fn update(op: Op, text: &str) -> pb::RelationshipUpdate {
    pb::RelationshipUpdate {
        operation: op as i32,
        relationship: Some(rel(text)),
    }
}

pub fn obj(t: &str, id: &str) -> pb::ObjectReference {
    pb::ObjectReference {
        object_type: t.into(),
        object_id: id.into(),
    }
}

pub fn subject(text: &str) -> pb::SubjectReference {
    let s = tessera::model::parse_subject(text).unwrap();
    tessera::api::convert::subject_ref_to_proto(&s)
}

pub fn fully_consistent() -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    })
}

pub fn at_least(z: &pb::ZedToken) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(z.clone())),
    })
}

pub fn at_exact(z: &pb::ZedToken) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtExactSnapshot(z.clone())),
    })
}

pub fn revision(z: &pb::ZedToken) -> Revision {
    Zookie::decode(&z.token).unwrap()
}

pub fn context(json: &str) -> Option<prost_types::Struct> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap();
    Some(tessera::api::convert::context_to_proto(&map))
}

pub async fn collect<T>(mut stream: tonic::Streaming<T>) -> Result<Vec<T>, tonic::Status> {
    let mut out = Vec::new();
    while let Some(item) = stream.message().await? {
        out.push(item);
    }
    Ok(out)
}

/// Asserts `result` failed with `code` and a message containing every one of `parts`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    parts: &[&str],
) {
    let status = result.expect_err("expected the call to fail");
    assert_eq!(
        status.code(),
        code,
        "unexpected code; message: {}",
        status.message()
    );
    for p in parts {
        assert!(
            status.message().contains(p),
            "`{}` does not mention `{p}`",
            status.message()
        );
    }
}

/// A request carrying `authorization: bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("bearer {token}").parse().unwrap());
    request
}
