"""ps_fuzz_test: a libFuzzer target, run as a test over its seed corpus.

ps_fuzz_test(name = "x_fuzz_test", srcs = ["x_fuzzer.cc"], deps = [...],
             corpus = glob(["fuzz_corpus/*"]))
defines
- `x_fuzzer`, a cc_binary whose source defines LLVMFuzzerTestOneInput. Under
  --config=asan (clang, --define=fuzzing=libfuzzer) it links libFuzzer and fuzzes; in
  every other build it links common/fuzz_replay_main.cc, which runs each corpus file once.
- `x_fuzz_test`, a test that runs the fuzzer over `corpus` (the seed inputs' files):
  `runs` mutated inputs under libFuzzer, the seeds alone otherwise (common/fuzz_run.sh).

A long run by hand: docs/reliability.md ("Fuzzing").
"""

def ps_fuzz_test(name, srcs, corpus, deps = [], runs = 20000, max_len = 4096, **kwargs):
    if not name.endswith("_fuzz_test"):
        fail("a ps_fuzz_test's name ends in _fuzz_test")
    fuzzer = name[:-len("_fuzz_test")] + "_fuzzer"
    native.cc_binary(
        name = fuzzer,
        testonly = True,
        srcs = srcs,
        deps = deps + select({
            "//bazel:libfuzzer": [],
            "//conditions:default": ["//common:fuzz_replay_main"],
        }),
        linkopts = select({
            "//bazel:libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
    )
    seeds = name + "_seeds"
    native.filegroup(
        name = seeds,
        testonly = True,
        srcs = corpus,
    )
    native.sh_test(
        name = name,
        srcs = ["//common:fuzz_run.sh"],
        args = [
            "$(location :%s)" % fuzzer,
            str(runs),
            str(max_len),
            "$(locations :%s)" % seeds,
        ],
        data = [":" + fuzzer, ":" + seeds],
        **kwargs
    )
