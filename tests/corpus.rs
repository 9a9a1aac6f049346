//! SQLite's sqllogictest corpus (`compat/sqllogictest/corpus.tar.xz`: 23 files, about 74,000
//! queries, each file passing on PostgreSQL 15; provenance in `MANIFEST.md` beside it) against
//! a real `chronos` process, through tokio-postgres with the extended protocol and binary
//! results, so a result column whose bytes do not match its declared type fails here.
//! Each file runs on a fresh server; the files run in parallel as separate tests.

mod support;

use sqllogictest_engines::postgres::{PostgresConfig, PostgresExtended};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::Server;

/// The corpus, unpacked once per test run.
fn corpus() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat/sqllogictest/corpus.tar.xz");
        let status = std::process::Command::new("tar")
            .arg("-xJf")
            .arg(&archive)
            .arg("-C")
            .arg(dir.path())
            .status()
            .expect("run tar");
        assert!(status.success(), "unpacking {} failed", archive.display());
        dir
    })
    .path()
}

fn run_file(name: &str) {
    let file: PathBuf = corpus().join("sqllogictest/test").join(name);
    assert!(file.exists(), "{} is not in the corpus", file.display());
    let server = Server::start();
    let mut config = PostgresConfig::new();
    config.host("127.0.0.1").port(server.pg_addr.port()).user("admin").dbname("chronos");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut runner = sqllogictest::Runner::new(|| {
            let config = config.clone();
            async move { PostgresExtended::connect(config).await }
        });
        // Conditions written for PostgreSQL apply (`skipif postgresql`, `onlyif postgresql`).
        runner.add_label("postgresql");
        // PostgreSQL 15 runs the slowest file (select5, 64-table joins) in under a minute.
        match tokio::time::timeout(Duration::from_secs(300), runner.run_file_async(&file)).await {
            Err(_) => panic!("{name} did not finish in 300 s"),
            Ok(Err(e)) => panic!("{name}:\n{}", e.display(false)),
            Ok(Ok(())) => {}
        }
    });
}

macro_rules! corpus_files {
    ($($test:ident => $path:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run_file($path);
            }
        )*
    };
}

corpus_files! {
    evidence_dropindex => "evidence/slt_lang_dropindex.test",
    evidence_droptable => "evidence/slt_lang_droptable.test",
    evidence_dropview => "evidence/slt_lang_dropview.test",
    index_between_1000 => "index/between/1000/slt_good_0.test",
    index_commute_10 => "index/commute/10/slt_good_10.test",
    index_delete_1 => "index/delete/1/slt_good_0.test",
    index_orderby_10 => "index/orderby/10/slt_good_4.test",
    index_orderby_nosort_10 => "index/orderby_nosort/10/slt_good_14.test",
    index_random_1000_1 => "index/random/1000/slt_good_1.test",
    index_random_1000_2 => "index/random/1000/slt_good_2.test",
    index_random_1000_3 => "index/random/1000/slt_good_3.test",
    index_random_1000_4 => "index/random/1000/slt_good_4.test",
    random_aggregates_129 => "random/aggregates/slt_good_129.test",
    random_aggregates_41 => "random/aggregates/slt_good_41.test",
    random_expr_1 => "random/expr/slt_good_1.test",
    random_groupby_0 => "random/groupby/slt_good_0.test",
    random_groupby_13 => "random/groupby/slt_good_13.test",
    random_select_124 => "random/select/slt_good_124.test",
    select1 => "select1.test",
    select2 => "select2.test",
    select3 => "select3.test",
    select4 => "select4.test",
    select5 => "select5.test",
}
