//! Generates the etcd v3 API types and service traits from this crate's own .proto files.
//! Needs `protoc` (Debian: protobuf-compiler); the error says so if it is missing.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_client(false)
        // A stored value is shared with the store (`bytes::Bytes`): a range or watch answer
        // counts a reference to it instead of copying it out for the encoder.
        .bytes(".mvccpb.KeyValue.value")
        .compile_protos(
            &[
                "proto/etcdserverpb/rpc.proto",
                "proto/v3lockpb/v3lock.proto",
                "proto/v3electionpb/v3election.proto",
            ],
            &["proto"],
        )
        .map_err(|e| {
            format!(
                "cannot compile the etcd API protos ({e}); install protoc, e.g. \
                 `apt-get install protobuf-compiler`"
            )
        })?;
    Ok(())
}
