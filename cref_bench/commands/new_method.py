"""Write a ready package for a new denoising method.

Creates the folder NAME (in --out, default the current folder) holding a Python package with
a single-map method (a SingleMapMethod subclass with one declared parameter, params() and
version; its example, a Gaussian blur, is yours to replace), a pyproject.toml that registers
it under the cref_bench.methods entry points, a README and a test that runs it on a
two-entry phantom corpus. It runs at once, nothing installed:

    cd NAME && python -m pytest
    cref-bench run --method PACKAGE/method.py:CLASS --corpus corpus.zarr --param sigma=2

and, after pip install -e NAME, as cref-bench run --method NAME.

Example:
    cref-bench new-method my-denoiser
"""

from __future__ import annotations

HELP = "write a ready package for a new method (class, entry point, test)"


def add_args(parser) -> None:
    """Add this command's arguments to ``parser``."""
    parser.add_argument("name", metavar="NAME",
                        help="the method's name: lower-case words joined by hyphens "
                             "(my-denoiser); the package is my_denoiser, the class MyDenoiser")
    parser.add_argument("--out", default=".",
                        help="the folder to create NAME in (default: the current folder)")


def main(args) -> int:
    """Run the command with the parsed ``args``; returns the exit status."""
    from cref_bench.methods.registry import available_methods
    from cref_bench.methods.scaffold import names, write_method_package
    from cref_bench.output_paths import check_output_folder

    words = names(args.name)
    if args.name in available_methods():
        from cref_bench.errors import InputError

        raise InputError("NAME", f"a method named {args.name!r} is registered already "
                                 f"({available_methods()[args.name]}); choose another name")
    check_output_folder(args.out, "--out")
    folder = write_method_package(args.name, args.out)
    print(f"wrote {folder}/: the method {words['cls']} in "
          f"{folder / words['package'] / 'method.py'}\n"
          f"  test it:  cd {folder} && python -m pytest\n"
          f"  run it:   cref-bench run --method {folder / words['package'] / 'method.py'}:"
          f"{words['cls']} --corpus CORPUS\n"
          f"  install:  pip install -e {folder}   (then --method {args.name})")
    return 0
