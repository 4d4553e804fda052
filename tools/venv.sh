# Sourced by tools/test and tools/demo (from the repository root): make sure .venv exists and holds graphc.
# Creates .venv with python3 if missing and installs graphc into it (editable, with the dev and examples extras). The
# install is skipped while .venv/.installed records the sha256 of the current pyproject.toml.
venv=.venv
stamp=$venv/.installed
new_enough='import sys; sys.exit(sys.version_info < (3, 10))'
if ! "$venv/bin/python" -c "$new_enough" 2>/dev/null; then  # missing, broken, or made by an old python
    python3 -c "$new_enough" 2>/dev/null || { echo "graphc needs python3 >= 3.10 on PATH" >&2; exit 1; }
    echo "Creating $venv (first run: installs graphc and its dependencies from PyPI) ..." >&2
    rm -rf "$venv"
    python3 -m venv "$venv" \
        || { rm -rf "$venv"; echo "python3 -m venv failed (on Debian/Ubuntu: apt install python3-venv)" >&2; exit 1; }
fi
want=$("$venv/bin/python" -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "Installing graphc into $venv (pyproject.toml changed or first run) ..." >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev,examples]'
    echo "$want" > "$stamp"
fi
