//! Vendors hls.js: copies `node_modules/hls.js/dist/hls.min.js` (npm ci of this crate's
//! package-lock.json, which `make install` runs) into the build, so the console never fetches
//! a player at run time. Without it a debug build still builds, serving a console whose live
//! view says the player is missing; a release build (what is deployed) refuses to.

use std::path::Path;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let player = Path::new(&dir).join("node_modules/hls.js/dist/hls.min.js");
    println!("cargo:rerun-if-changed={}", player.display());
    println!("cargo:rerun-if-changed=package-lock.json");
    let vendored = Path::new(&out).join("hls.min.js");
    let code = match std::fs::copy(&player, &vendored) {
        Ok(_) => format!("Some(include_str!({:?}))", vendored.display().to_string()),
        Err(err) if std::env::var("PROFILE").as_deref() == Ok("release") => {
            panic!("{}: {err}; run `make install` (npm ci in functions/web-console) first", player.display())
        }
        Err(err) => {
            println!("cargo:warning=hls.js is not vendored ({}: {err}); run `make install`", player.display());
            "None".to_owned()
        }
    };
    let generated = format!(
        "/// hls.js's minified build, when `npm ci` vendored it.\npub const HLS_MIN_JS: Option<&str> = {code};\n"
    );
    std::fs::write(Path::new(&out).join("vendored.rs"), generated).expect("OUT_DIR is writable");
}
