"""Method specs: registered names, package.module:Attribute, and path/to/file.py:Attribute
(loaded as it is, nothing installed; reloaded when its content changes)."""

from __future__ import annotations

import textwrap

import pytest

from cref_bench.errors import MethodError
from cref_bench.methods.protocol import Method, load_method
from cref_bench.methods.registry import is_file_spec, name_file_frames, resolve

SOURCE = '''
from cref_bench.methods.protocol import Method

class Scaled(Method):
    name = "scaled"
    version = "VERSION"

    def __init__(self, factor=2.0):
        self.factor = factor

    def params(self):
        return {"factor": self.factor}
'''


def _write(path, version="1"):
    path.write_text(textwrap.dedent(SOURCE).replace("VERSION", version))
    return path


@pytest.mark.parametrize("spec, is_file", [
    ("lowpass", False), ("pkg.module:Class", False), ("method.py:Class", True),
    ("dir/method:Class", True), ("./a/b.py:Outer.Inner", True), (r"C:\x\y.py:Cls", True),
])
def test_which_specs_name_files(spec, is_file):
    assert is_file_spec(spec) is is_file


def test_a_file_is_loaded_once_and_again_when_it_changes(tmp_path):
    path = _write(tmp_path / "my method.py")
    method = load_method(f"{path}:Scaled", factor=3.0)
    assert isinstance(method, Method) and method.params() == {"factor": 3.0}
    assert resolve(f"{path}:Scaled") is type(method)  # the same content: the same class
    _write(path, version="2")
    changed = resolve(f"{path}:Scaled")
    assert changed is not type(method) and changed.version == "2"
    assert type(method).version == "1"


def test_file_faults_are_method_errors(tmp_path, monkeypatch):
    with pytest.raises(MethodError, match="no file .*absent.py"):
        resolve(f"{tmp_path / 'absent.py'}:Thing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(MethodError, match="is not a Python file"):
        resolve(f"{tmp_path / 'notes.txt'}:Thing")
    path = _write(tmp_path / "ok.py")
    with pytest.raises(MethodError, match=r"ok\.py has no attribute 'Nope'"):
        resolve(f"{path}:Nope")
    (tmp_path / "needs.py").write_text("import not_installed_pkg_qrs\n")
    with pytest.raises(MethodError, match="imports 'not_installed_pkg_qrs'"):
        resolve(f"{tmp_path / 'needs.py'}:Thing")


def test_a_module_beside_you_gets_a_hint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "mymethod_xyz.py")
    with pytest.raises(MethodError, match=r"mymethod_xyz\.py is here: give it as "
                                          r"\./mymethod_xyz\.py:Scaled"):
        resolve("mymethod_xyz:Scaled")
    assert resolve("./mymethod_xyz.py:Scaled").name == "scaled"
    with pytest.raises(MethodError, match="install its package, add its folder to PYTHONPATH"):
        resolve("elsewhere_xyz:Scaled")


def test_frames_of_a_file_method_name_the_file(tmp_path):
    """Code that travelled by value (cloudpickle) is "<dynamic-code>": its frames get the
    file's path and source line back."""
    import cloudpickle

    path = tmp_path / "boom.py"
    path.write_text("from cref_bench.methods.protocol import SingleMapMethod\n\n\n"
                    "class Boom(SingleMapMethod):\n"
                    "    def denoise_map(self, volume, mask=None):\n"
                    "        raise RuntimeError('kaboom')\n")
    spec = f"{path}:Boom"
    method = cloudpickle.loads(cloudpickle.dumps(load_method(spec)))
    import traceback

    try:
        method.denoise_map(None)
    except RuntimeError as exc:
        trace = "".join(traceback.format_exception(exc))
    assert 'File "<dynamic-code>", line 6, in denoise_map' in trace
    named = name_file_frames(trace, spec)
    assert f'File "{path}", line 6, in denoise_map\n' \
           "    raise RuntimeError('kaboom')\n" in named
    assert "<dynamic-code>" not in named and named.endswith("RuntimeError: kaboom\n")
    assert name_file_frames(trace, "lowpass") == trace
