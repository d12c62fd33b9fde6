//! `warden-scheduler`: runs a scheduler member and manages jobs.

fn main() {
    eprintln!("warden-scheduler: not built yet");
    std::process::exit(2);
}
