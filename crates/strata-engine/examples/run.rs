//! Pull an image and run a container in it with the engine, as an embedding program would.
//!
//! ```text
//! cargo build --workspace && sudo target/debug/examples/run /tmp/store docker.io/library/busybox
//! ```
//! The `strata` binary must be on the PATH (or beside this example): it is the containers'
//! monitor.

use strata_engine::containers::create::CreateOptions;
use strata_engine::pull::{NoProgress, PullOptions};
use strata_engine::{Engine, EngineOptions};
use strata_runtime::spec::SpecOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(root), Some(image)) = (args.next(), args.next()) else {
        return Err("usage: run STORE-ROOT IMAGE [COMMAND...]".into());
    };
    let cmd: Vec<String> = args.collect();

    let mut opts = EngineOptions::new(root);
    if let Some(beside) = std::env::current_exe()?.parent().and_then(|d| d.parent()) {
        let strata = beside.join("strata");
        if strata.exists() {
            opts.monitor_exe = strata;
        }
    }
    let engine = Engine::open(opts)?;
    let pulled = engine.pull(&image, &PullOptions::default(), &NoProgress)?;
    println!("pulled {} ({})", pulled.name, pulled.target.digest);

    let container = engine.create_container(&CreateOptions {
        image,
        runtime: "runc".to_owned(),
        auto_remove: true,
        spec: SpecOptions {
            cmd,
            ..SpecOptions::default()
        },
        ..CreateOptions::default()
    })?;
    engine.start(&container.id)?;
    let code = engine.wait(&container.id)?;
    println!("container {} exited with {code}", &container.id[..12]);
    Ok(())
}
