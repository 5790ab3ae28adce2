"""EMDB accession codes and the folder layout of the EMDB archive.

Every mirror of the archive (``pub/databases/emdb/structures/`` at the EBI,
``pub/emdb/structures/`` at the wwPDB, RCSB and PDBj) holds one folder per entry::

    EMD-1234/header/emd-1234.xml         the XML header (official name since 2022; the
                                         older copy emd-1234-v30.xml may be there too)
    EMD-1234/map/emd_1234.map.gz         the primary map
    EMD-1234/other/emd_1234_half_map_1.map.gz   half-maps (and additional maps)
    EMD-1234/masks/emd_1234_msk_1.map    masks (the header's segmentation list)

The local download cache mirrors the same layout, so a path relative to the archive root
names one file everywhere.
"""

from __future__ import annotations

import re

from cref_bench.errors import InputError

_ID_PATTERN = re.compile(r"^(?:EMD[-_]?)?(\d{4,})$", re.IGNORECASE)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

HEADER_FOLDER = "header"
MAP_FOLDER = "map"
HALF_MAP_FOLDER = "other"
MASK_FOLDER = "masks"


def normalize_id(text: str) -> str:
    """The canonical accession ``EMD-<digits>`` for ``'EMD-1234'``, ``'emd_1234'`` or ``'1234'``.

    Args:
        text: an accession code, with or without the ``EMD-`` prefix (surrounding blanks ignored).

    Returns:
        The accession as ``'EMD-1234'``: at least four digits, surplus leading zeros dropped
        (``'EMD-00552'`` gives ``'EMD-0552'``, ``'EMD-012345'`` gives ``'EMD-12345'``).

    Raises:
        ValueError: the text is not an EMDB accession (at least four digits).
    """
    match = _ID_PATTERN.match(str(text).strip())
    if not match:
        raise InputError(f"not an EMDB accession code: {text!r} (expected 'EMD-1234' or "
                         "'1234')")
    return f"EMD-{int(match.group(1)):04d}"


def id_number(emdb_id: str) -> str:
    """The digits of an accession (``'EMD-1234'`` gives ``'1234'``); accepts any form
    :func:`normalize_id` does."""
    return normalize_id(emdb_id)[4:]


def check_file_name(name: str, where: str) -> str:
    """Return ``name`` if it is a plain file name safe to join to a folder or URL.

    File names come from headers downloaded from the network; a name with a slash or a
    leading dot could point outside the entry's folder.

    Args:
        name: the file name to check.
        where: what the name came from, for the error message.

    Raises:
        ValueError: the name is empty, contains a path separator or starts with a dot.
    """
    if not _SAFE_NAME.match(name or ""):
        raise InputError(where, f"unsafe or empty file name {name!r}")
    return name


def header_relpaths(emdb_id: str) -> tuple[str, str]:
    """The archive paths an entry's XML header may have, in the order to try them: the
    official name ``'EMD-1234/header/emd-1234.xml'``, then the older
    ``'EMD-1234/header/emd-1234-v30.xml'``."""
    number = id_number(emdb_id)
    folder = f"EMD-{number}/{HEADER_FOLDER}"
    return f"{folder}/emd-{number}.xml", f"{folder}/emd-{number}-v30.xml"


def header_relpath(emdb_id: str) -> str:
    """The archive path of an entry's XML header under its official name, e.g.
    ``'EMD-1234/header/emd-1234.xml'`` (see :func:`header_relpaths` for both names)."""
    return header_relpaths(emdb_id)[0]


def entry_relpath(emdb_id: str, folder: str, name: str) -> str:
    """The archive path of file ``name`` in ``folder`` of an entry, e.g.
    ``'EMD-1234/other/x.map.gz'``.

    Raises:
        ValueError: ``name`` is not a plain file name (see :func:`check_file_name`).
    """
    emdb_id = normalize_id(emdb_id)
    return f"{emdb_id}/{folder}/{check_file_name(name, emdb_id)}"
