//! Snapshot load (`tree::Tree::read_snapshot`, every format version) on arbitrary bytes: it
//! must refuse what it cannot prove intact without panicking, and a tree that loads must write
//! a snapshot that loads to a tree writing the very same bytes, with the same digest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkw::tree::Tree;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = Tree::read_snapshot(&mut { data }) else {
        return;
    };
    let mut written = Vec::new();
    tree.write_snapshot(&mut written)
        .expect("a loaded tree writes");
    let again = Tree::read_snapshot(&mut written.as_slice()).expect("a written snapshot loads");
    assert_eq!(again.digest(), tree.digest(), "digest round trip");
    let mut written_again = Vec::new();
    again
        .write_snapshot(&mut written_again)
        .expect("a loaded tree writes");
    assert_eq!(written, written_again, "snapshot round trip");
});
