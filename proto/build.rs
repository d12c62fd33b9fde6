//! Compiles proto/warden.proto with protox, so building needs no protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/warden.proto");
    println!("cargo:rerun-if-changed=proto/peer.proto");
    let fds = protox::compile(["proto/warden.proto", "proto/peer.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
