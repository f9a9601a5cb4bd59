#!/usr/bin/env python3
"""Checks scripts/check-structure.py on small trees written to a temporary directory, so the
gate cannot pass silently: each case holds one finding (or none) and the exit code and output
must say so. Run by .ci/run: `python3 scripts/test_check_structure.py`."""

import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "check-structure.py"


def body(n):
    """n lines of statements."""
    return "".join(f"    let _v{i} = {i};\n" for i in range(n))


def fn_of(lines, name="f", head="fn", ret=""):
    """A function whose text is exactly `lines` lines long (signature and closing brace count)."""
    return f"{head} {name}(){ret} {{\n" + body(lines - 2) + "}\n"


class CheckStructure(unittest.TestCase):
    def run_on(self, files):
        """Writes files (path under the root -> text) and runs the checker: (exit code, output)."""
        with tempfile.TemporaryDirectory() as root:
            files = {"src/lib.rs": "pub mod a;\n", **files}
            for rel, text in files.items():
                path = Path(root) / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            done = subprocess.run(
                [sys.executable, str(SCRIPT), root], capture_output=True, text=True, check=False
            )
            return done.returncode, done.stdout

    def assert_ok(self, files):
        code, out = self.run_on(files)
        self.assertEqual((code, out), (0, "check-structure: ok\n"))

    def assert_finds(self, files, *needles):
        code, out = self.run_on(files)
        self.assertEqual(code, 1, out)
        for needle in needles:
            self.assertIn(needle, out)

    # Import cycles.

    def test_a_clean_tree_passes(self):
        self.assert_ok({"src/a.rs": "use crate::b::X;\n", "src/b.rs": "pub struct X;\n"})

    def test_a_direct_cycle_fails(self):
        self.assert_finds(
            {"src/a.rs": "use crate::b::X;\npub struct Y;\n", "src/b/mod.rs": "use crate::a::Y;\n"},
            "import cycle between top-level modules {a, b}",
            "a <-> b (src/a.rs:1; src/b/mod.rs:1)",
        )

    def test_a_longer_loop_fails(self):
        self.assert_finds(
            {
                "src/a.rs": "fn f() { crate::b::g() }\n",
                "src/b.rs": "fn g() { crate::c::h() }\n",
                "src/c/deep/x.rs": "fn h() { crate::a::f() }\n",
            },
            "{a, b, c}",
            "c -> a (src/c/deep/x.rs:1)",
        )

    def test_use_groups_and_super_chains_are_imports(self):
        self.assert_finds(
            {"src/a.rs": "use crate::{\n    b::{X, Y},\n    self,\n};\n", "src/b/x.rs": "use super::super::a;\n"},
            "{a, b}",
        )

    def test_a_super_inside_an_inline_module_counts_its_depth(self):
        # super::super from inside `mod m {}` in src/b/x.rs is b, not the crate root.
        self.assert_ok(
            {"src/a.rs": "use crate::b::X;\n", "src/b/x.rs": "mod m {\n    use super::super::a;\n}\n"}
        )

    def test_imports_in_tests_comments_and_strings_are_not_edges(self):
        self.assert_ok(
            {
                "src/a.rs": "use crate::b::X;\n",
                "src/b.rs": textwrap.dedent(
                    """\
                    // crate::a::f is mentioned here
                    /* and crate::a /* nested */ here */
                    const S: &str = "crate::a::f";
                    const R: &str = r#"crate::a "quoted" "#;
                    #[cfg(test)]
                    mod tests {
                        use crate::a::f;
                    }
                    #[cfg(test)]
                    mod helpers;
                    """
                ),
                "src/b/helpers.rs": "use crate::a::f;\n",
            }
        )

    # File lengths.

    def test_an_801_line_file_fails_and_800_passes(self):
        self.assert_ok({"src/a.rs": "const X: u8 = 0;\n" * 800})
        self.assert_finds({"src/a.rs": "const X: u8 = 0;\n" * 801}, "src/a.rs: 801 production lines")

    def test_test_code_does_not_count_towards_the_file(self):
        tests = "#[cfg(test)]\nmod tests {\n" + body(20) + "}\n"
        self.assert_ok({"src/a.rs": "const X: u8 = 0;\n" * 790 + tests})
        self.assert_ok({"src/a/tests.rs": "const X: u8 = 0;\n" * 900})
        self.assert_ok({"src/a.rs": "#![cfg(test)]\n" + "const X: u8 = 0;\n" * 900})

    # Function lengths.

    def test_an_81_line_function_fails_and_80_passes(self):
        self.assert_ok({"src/a.rs": fn_of(80)})
        self.assert_finds({"src/a.rs": fn_of(81, "big")}, "src/a.rs:1: fn big is 81 lines")

    def test_a_long_comment_allows_a_long_function(self):
        allowed = "/// Docs.\n// long: one match over every message kind\n#[inline]\n#[allow(\n    dead_code\n)]\n"
        self.assert_ok({"src/a.rs": allowed + fn_of(120)})
        # A comment further up, above other code, does not count.
        self.assert_finds({"src/a.rs": "// long: not mine\nconst X: u8 = 0;\n" + fn_of(81)}, "fn f is 81")

    def test_methods_in_impl_blocks_and_trait_defaults_count(self):
        method = textwrap.indent(fn_of(81, "m", head="pub(crate) async fn"), "    ")
        self.assert_finds({"src/a.rs": "impl S {\n" + method + "}\n"}, "src/a.rs:2: fn m is 81 lines")
        decl = "    fn declared(&self) -> u8;\n"
        self.assert_finds({"src/a.rs": "trait T {\n" + decl + method + "}\n"}, "src/a.rs:3: fn m is 81 lines")

    def test_nested_functions_and_closures_count(self):
        inner = textwrap.indent(fn_of(81, "inner"), "    ")
        self.assert_finds({"src/a.rs": "fn outer() {\n" + inner + "}\n"}, "fn inner is 81", "fn outer is 83")
        closure = "fn c() {\n    let f = || {\n" + body(78) + "    };\n}\n"
        self.assert_finds({"src/a.rs": closure}, "fn c is 82")

    def test_signatures_with_semicolons_and_patterns_are_bodies(self):
        self.assert_finds({"src/a.rs": fn_of(81, ret=" -> [u8; 4]")}, "fn f is 81")
        pattern = "fn h(S { a, b }: S) {\n" + body(79) + "}\n"
        self.assert_finds({"src/a.rs": pattern}, "fn h is 81")

    def test_braces_in_strings_and_chars_do_not_end_a_function(self):
        tricky = '    let _s = "}}}";\n    let _r = br#"}"}"#;\n    let _c = \'}\';\n    let _l: &\'static str = "";\n'
        text = "fn f() {\n" + tricky + body(75) + "}\n"  # 81 lines
        self.assert_finds({"src/a.rs": text}, "fn f is 81")

    def test_functions_in_test_code_do_not_count(self):
        self.assert_ok({"src/a.rs": "#[cfg(test)]\nmod tests {\n" + fn_of(200) + "}\n"})
        self.assert_ok({"src/a.rs": "#[cfg(all(test, unix))]\n" + fn_of(200)})
        self.assert_ok({"src/a.rs": "#[cfg(test)]\npub(crate) mod support;\n", "src/a/support.rs": fn_of(200)})


if __name__ == "__main__":
    unittest.main()
