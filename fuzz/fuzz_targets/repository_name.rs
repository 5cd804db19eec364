//! Repository names: a name that parses displays back to its input and obeys
//! the spec's grammar (checked here independently of the parser).
#![no_main]

use berth_oci::RepositoryName;
use libfuzzer_sys::fuzz_target;

/// The spec's component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, walked by hand.
fn is_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let run = b[i..].iter().take_while(|&&x| alnum(x)).count();
        if run == 0 {
            return false;
        }
        i += run;
        if i == b.len() {
            return true;
        }
        let sep = b[i..].iter().take_while(|&&x| !alnum(x)).count();
        let ok = match &c[i..i + sep] {
            "." | "_" | "__" => true,
            s => s.bytes().all(|x| x == b'-'),
        };
        if !ok {
            return false;
        }
        i += sep;
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let grammar_ok = !input.is_empty() && input.len() <= 255 && input.split('/').all(is_component);
    match input.parse::<RepositoryName>() {
        Ok(name) => {
            assert!(grammar_ok, "accepted {input:?}");
            assert_eq!(name.to_string(), input);
            assert_eq!(name.as_str(), input);
            // Nothing that could escape a directory on disk.
            assert!(!name.as_str().split('/').any(|c| c == "." || c == ".."));
        }
        Err(_) => assert!(!grammar_ok, "rejected {input:?}"),
    }
});
