"""Tests of dataset_builder.emdb.header: reading EMDB v3.0 XML headers.

REALISTIC_HEADER follows the element structure of EMDB's v3.0 schema (``emdb30.xsd``,
repository emdb-empiar/emdb-xml-translator), with the clutter of a real header around the
parts we read (citations, sample, microscopy, several contours, two masks, a half-map
list). The values are illustrative, chosen so that every field differs from the others
(x, y, z spacings, col/row/sec dimensions and origins, a non-default axis order).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from cref_bench.errors import InputError, MapError
from dataset_builder.emdb.build import choose_mask
from dataset_builder.emdb.header import HeaderError, choose_half_maps, parse_header, read_header
from dataset_builder.emdb.layout import (
    entry_relpath,
    header_relpath,
    header_relpaths,
    id_number,
    normalize_id,
)
from tests.emdb_server import header_xml, make_entry_files

REAL_HEADERS = Path(__file__).parent / "data" / "emdb"
"""Headers written by the archive itself (sources and licence in its README.md)."""

REALISTIC_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<emd emdb_id="EMD-11638" version="3.0.2.5" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <admin>
    <status_history_list>
      <status status_id="1"><date>2020-10-21</date><code>REL</code>
        <processing_site>PDBe</processing_site></status>
    </status_history_list>
    <current_status><code>REL</code><processing_site>PDBe</processing_site></current_status>
    <sites><deposition>PDBe</deposition><last_processing>PDBe</last_processing></sites>
    <key_dates>
      <deposition>2020-08-20</deposition>
      <header_release>2020-10-21</header_release>
      <map_release>2020-10-28</map_release>
      <update>2021-05-12</update>
    </key_dates>
    <title>Apoferritin at atomic resolution (illustrative header)</title>
    <authors_list><author>Author A</author><author>Author B</author></authors_list>
    <keywords>apoferritin, high resolution</keywords>
  </admin>
  <crossreferences>
    <citation_list>
      <primary_citation>
        <journal_citation published="true">
          <author order="1">Author A</author>
          <title>Single-particle cryo-EM at atomic resolution</title>
          <journal>Nature</journal><journal_abbreviation>Nature</journal_abbreviation>
          <volume>587</volume><first_page>152</first_page><last_page>156</last_page><year>2020</year>
          <external_references type="DOI">doi:10.1038/s41586-020-2829-0</external_references>
        </journal_citation>
      </primary_citation>
    </citation_list>
    <emdb_list><emdb_reference><emdb_id>EMD-11639</emdb_id>
      <relationship><other>same sample</other></relationship></emdb_reference></emdb_list>
    <pdb_list>
      <pdb_reference><pdb_id>7A4M</pdb_id><relationship><in_frame>FULLOVERLAP</in_frame></relationship></pdb_reference>
      <pdb_reference><pdb_id>7a4n</pdb_id></pdb_reference>
    </pdb_list>
  </crossreferences>
  <sample>
    <name>Apoferritin</name>
    <supramolecule_list><complex_supramolecule supramolecule_id="1"><name>Apoferritin</name>
    </complex_supramolecule></supramolecule_list>
    <macromolecule_list><protein_or_peptide macromolecule_id="1"><name>Ferritin heavy chain</name>
      <sequence><string>TTASTSQVRQNYHQDSEAAINRQINLELYASYVYLSMSYYFDRDDVALKNFAKYFLHQSHEEREHAEKLMKLQNQRGG</string>
      </sequence></protein_or_peptide></macromolecule_list>
  </sample>
  <structure_determination_list>
    <structure_determination structure_determination_id="1">
      <method>singleParticle</method>
      <aggregation_state>particle</aggregation_state>
      <specimen_preparation_list>
        <single_particle_preparation preparation_id="1">
          <buffer><ph>7.5</ph></buffer>
          <vitrification><cryogen_name>ETHANE</cryogen_name></vitrification>
        </single_particle_preparation>
      </specimen_preparation_list>
      <microscopy_list>
        <single_particle_microscopy microscopy_id="1">
          <microscope>FEI TITAN KRIOS</microscope>
          <acceleration_voltage units="kV">300</acceleration_voltage>
        </single_particle_microscopy>
      </microscopy_list>
      <singleparticle_processing image_processing_id="1">
        <particle_selection><number_selected>1000000</number_selected></particle_selection>
        <final_reconstruction>
          <applied_symmetry><point_group>O</point_group></applied_symmetry>
          <algorithm>FOURIER SPACE</algorithm>
          <resolution units="Å" res_type="BY AUTHOR">1.22</resolution>
          <resolution_method>FSC 0.143 CUT-OFF</resolution_method>
          <software_list><software><name>RELION</name><version>3.1</version></software></software_list>
        </final_reconstruction>
      </singleparticle_processing>
    </structure_determination>
  </structure_determination_list>
  <map format="CCP4" size_kbytes="130452">
    <file>emd_11638.map.gz</file>
    <symmetry><space_group>1</space_group></symmetry>
    <data_type>IMAGE STORED AS FLOATING POINT NUMBER (4 BYTES)</data_type>
    <dimensions><col>320</col><row>336</row><sec>352</sec></dimensions>
    <origin><col>-160</col><row>-168</row><sec>-176</sec></origin>
    <spacing><x>320</x><y>336</y><z>352</z></spacing>
    <cell>
      <a units="Å">155.2</a><b units="Å">164.64</b><c units="Å">175.648</c>
      <alpha units="deg">90.0</alpha><beta units="deg">90.0</beta><gamma units="deg">90.0</gamma>
    </cell>
    <axis_order><fast>Y</fast><medium>X</medium><slow>Z</slow></axis_order>
    <statistics><minimum>-0.28</minimum><maximum>0.61</maximum><average>0.0004</average><std>0.021</std></statistics>
    <pixel_spacing><x units="Å">0.485</x><y units="Å">0.49</y><z units="Å">0.499</z></pixel_spacing>
    <contour_list>
      <contour primary="false"><level>0.02</level><source>EMDB</source></contour>
      <contour primary="true"><level>0.045</level><source>AUTHOR</source></contour>
    </contour_list>
    <label>::::EMDATABANK.org::::EMD-11638::::</label>
    <annotation_details>Apoferritin</annotation_details>
  </map>
  <interpretation>
    <modelling_list><modelling><initial_model><access_code>6s61</access_code></initial_model>
      <refinement_protocol>FLEXIBLE FIT</refinement_protocol></modelling></modelling_list>
    <segmentation_list>
      <segmentation>
        <file>emd_11638_msk_1.map</file>
        <mask_details format="CCP4" size_kbytes="147841">
          <file>emd_11638_msk_1.map</file>
          <data_type>IMAGE STORED AS FLOATING POINT NUMBER (4 BYTES)</data_type>
          <dimensions><col>320</col><row>336</row><sec>352</sec></dimensions>
          <origin><col>0</col><row>0</row><sec>0</sec></origin>
          <spacing><x>320</x><y>336</y><z>352</z></spacing>
          <cell><a>155.2</a><b>164.64</b><c>175.648</c><alpha>90</alpha><beta>90</beta><gamma>90</gamma></cell>
          <axis_order><fast>X</fast><medium>Y</medium><slow>Z</slow></axis_order>
          <pixel_spacing>
            <x units="Å">0.485</x><y units="Å">0.49</y><z units="Å">0.499</z>
          </pixel_spacing>
        </mask_details>
      </segmentation>
      <segmentation><file>emd_11638_msk_2.map</file><details>tighter mask</details></segmentation>
    </segmentation_list>
    <half_map_list>
      <half_map format="CCP4" size_kbytes="131000">
        <file>emd_11638_half_map_1.map.gz</file>
        <data_type>IMAGE STORED AS FLOATING POINT NUMBER (4 BYTES)</data_type>
        <dimensions><col>320</col><row>336</row><sec>352</sec></dimensions>
        <origin><col>0</col><row>0</row><sec>0</sec></origin>
        <spacing><x>320</x><y>336</y><z>352</z></spacing>
        <cell><a>155.2</a><b>164.64</b><c>175.648</c><alpha>90</alpha><beta>90</beta><gamma>90</gamma></cell>
        <axis_order><fast>X</fast><medium>Y</medium><slow>Z</slow></axis_order>
        <pixel_spacing>
          <x units="Å">0.485</x><y units="Å">0.49</y><z units="Å">0.499</z>
        </pixel_spacing>
        <contour_list><contour primary="true"><level>0.03</level></contour></contour_list>
      </half_map>
      <half_map format="CCP4" size_kbytes="131001">
        <file>emd_11638_half_map_2.map.gz</file>
        <data_type>IMAGE STORED AS FLOATING POINT NUMBER (4 BYTES)</data_type>
        <dimensions><col>320</col><row>336</row><sec>352</sec></dimensions>
        <origin><col>0</col><row>0</row><sec>0</sec></origin>
        <spacing><x>320</x><y>336</y><z>352</z></spacing>
        <cell><a>155.2</a><b>164.64</b><c>175.648</c><alpha>90</alpha><beta>90</beta><gamma>90</gamma></cell>
        <axis_order><fast>X</fast><medium>Y</medium><slow>Z</slow></axis_order>
        <pixel_spacing>
          <x units="Å">0.485</x><y units="Å">0.49</y><z units="Å">0.499</z>
        </pixel_spacing>
      </half_map>
    </half_map_list>
  </interpretation>
  <validation><fsc_curve><file>emd_11638_fsc.xml</file></fsc_curve></validation>
</emd>
"""


def test_realistic_header_every_field():
    h = parse_header(REALISTIC_HEADER.encode("utf-8"), source="emd-11638-v30.xml")
    assert h.emdb_id == "EMD-11638"
    assert h.method == "singleParticle"
    assert h.resolution == pytest.approx(1.22)
    assert h.release_date == date(2020, 10, 21)          # header_release, not map_release
    assert h.fitted_pdbs == ("7a4m", "7a4n")              # lower-cased, header order
    # primary map: geometry in the header's own axes
    assert h.map.file == "emd_11638.map.gz"
    assert h.map.relpath == "EMD-11638/map/emd_11638.map.gz"
    assert h.dimensions == (320, 336, 352)
    assert h.origin == (-160, -168, -176)
    assert h.axis_order == ("Y", "X", "Z")
    assert h.pixel_spacing == pytest.approx((0.485, 0.49, 0.499))
    assert h.contour_level == pytest.approx(0.045)       # the primary contour, though listed second
    assert h.map.size_kbytes == 130452
    # half-maps: names from the header, folder other/, their own geometry
    assert h.half_map_files == ("emd_11638_half_map_1.map.gz", "emd_11638_half_map_2.map.gz")
    assert [m.relpath for m in h.half_maps] == ["EMD-11638/other/emd_11638_half_map_1.map.gz",
                                                "EMD-11638/other/emd_11638_half_map_2.map.gz"]
    assert h.half_maps[0].axis_order == ("X", "Y", "Z")
    assert h.half_maps[0].origin == (0, 0, 0)
    assert h.half_maps[0].contour_level == pytest.approx(0.03)
    assert h.half_maps[1].contour_level is None
    assert h.half_maps[1].size_kbytes == 131001
    # masks: segmentation files in masks/; geometry from mask_details where given
    assert h.mask_files == ("emd_11638_msk_1.map", "emd_11638_msk_2.map")
    assert h.masks[0].relpath == "EMD-11638/masks/emd_11638_msk_1.map"
    assert h.masks[0].dimensions == (320, 336, 352)
    assert h.masks[0].size_kbytes == 147841
    assert h.masks[1].dimensions is None and h.masks[1].pixel_spacing is None


def test_stand_in_template_round_trips(tmp_path):
    """The header written by the test stand-in reads back to exactly what was written."""
    shape = (6, 7, 8)                                   # (z, y, x)
    rng = np.random.default_rng(0)
    entry = make_entry_files(tmp_path, "EMD-4321", rng.random(shape), rng.random(shape),
                             np.ones(shape), voxel=(1.5, 1.25, 1.0), start=(3, -2, 1),
                             resolution=4.5, method="subtomogramAveraging",
                             release_date=date(2019, 3, 4), fitted_pdbs=("6abc",),
                             contour_level=0.125)
    h = read_header(entry.header)
    assert (h.emdb_id, h.method, h.resolution, h.release_date) == (
        "EMD-4321", "subtomogramAveraging", 4.5, date(2019, 3, 4))
    assert h.fitted_pdbs == ("6abc",)
    assert h.dimensions == (8, 7, 6)        # (col, row, sec) = (x, y, z) for X, Y, Z order
    assert h.pixel_spacing == (1.0, 1.25, 1.5)      # (x, y, z)
    assert h.origin == (3, -2, 1)
    assert h.contour_level == 0.125
    assert [tmp_path / m.relpath for m in h.half_maps] == list(entry.half_maps)
    assert [tmp_path / m.relpath for m in h.masks] == list(entry.masks)
    assert tmp_path / h.map.relpath == entry.map
    # the stated sizes are EMDB's: the uncompressed file (header and 6*7*8 floats) in kB
    assert h.half_maps[0].size_kbytes == (1024 + 6 * 7 * 8 * 4) // 1000
    # the masks are listed by name only, as in most real entries
    assert h.masks[0].dimensions is None and h.masks[0].size_kbytes is None


def _minimal(**overrides) -> str:
    options = {"map_file": "emd_1234.map.gz",
               "half_map_files": ("emd_1234_half_map_1.map.gz", "emd_1234_half_map_2.map.gz"),
               "mask_files": ("emd_1234_msk_1.map",), "dimensions": (4, 4, 4),
               "pixel_spacing": (1.0, 1.0, 1.0)}
    options.update(overrides)
    return header_xml("EMD-1234", **options)


def test_malformed_xml_names_the_entry():
    with pytest.raises(HeaderError) as info:
        parse_header(b"<emd emdb_id='EMD-1234'><map>", source="cache/emd-1234-v30.xml",
                     emdb_id="1234")
    message = str(info.value)
    assert "EMD-1234" in message and "malformed XML" in message
    assert "cache/emd-1234-v30.xml" in message
    assert isinstance(info.value, InputError) and not isinstance(info.value, MapError)


def test_missing_half_maps_and_mask():
    one_half = _minimal(half_map_files=("emd_1234_half_map_1.map.gz",))
    with pytest.raises(HeaderError, match=r"EMD-1234.*1 half-map"):
        parse_header(one_half)
    assert parse_header(one_half, require_half_maps=False).half_map_files == (
        "emd_1234_half_map_1.map.gz",)
    with pytest.raises(HeaderError, match=r"EMD-1234.*0 half-map"):
        parse_header(_minimal(half_map_files=()))
    no_mask = _minimal(mask_files=())
    with pytest.raises(HeaderError, match=r"EMD-1234.*no mask"):
        parse_header(no_mask)
    assert parse_header(no_mask, require_mask=False).masks == ()


@pytest.mark.parametrize("edit, fault", [
    (lambda x: x.replace("<emd ", "<entry ").replace("</emd>", "</entry>"),
     "not an EMDB v3.0 header"),
    (lambda x: x.replace('emdb_id="EMD-1234"', 'emdb_id="ABC"'), "not an EMDB accession"),
    (lambda x: x.replace("<file>emd_1234_msk_1.map</file>", "<file>../../etc/passwd</file>", 1),
     "unsafe"),
    (lambda x: x.replace("<col>4</col>", "<col>four</col>", 1), "is not a number"),
    (lambda x: x.replace("<row>4</row>", "", 1), "needs all of col, row, sec"),
    (lambda x: x.replace("<medium>Y</medium>", "<medium>X</medium>", 1), "not a permutation"),
    (lambda x: x.replace("<header_release>2022-01-05", "<header_release>soon", 1), "is not a date"),
    (lambda x: x.replace("<resolution units=\"Å\" res_type=\"BY AUTHOR\">3",
                         "<resolution units=\"Å\" res_type=\"BY AUTHOR\">high", 1),
     "is not a number"),
])
def test_bad_headers_are_refused_clearly(edit, fault):
    text = edit(_minimal())
    assert text != _minimal()
    with pytest.raises(HeaderError, match=fault):
        parse_header(text, source="h.xml")


def test_primary_map_geometry_is_required():
    text = _minimal()
    start = text.index("<pixel_spacing>")
    end = text.index("</pixel_spacing>") + len("</pixel_spacing>")
    without = text[:start] + text[end:]         # removes the primary map's spacing (the first one)
    with pytest.raises(HeaderError, match=r"map: no <pixel_spacing>"):
        parse_header(without)


def test_header_for_another_entry_is_refused():
    with pytest.raises(HeaderError, match="describes EMD-1234, not EMD-9999"):
        parse_header(_minimal(), emdb_id="EMD-9999")


def test_ids_and_layout():
    assert normalize_id("EMD-1234") == normalize_id("1234") == normalize_id(" emd_1234 ") \
        == "EMD-1234"
    assert normalize_id("EMD-12345") == "EMD-12345"
    assert id_number("emd-0042") == "0042"
    for bad in ("EMD-12", "EMD-12a4", "", "PDB-1234"):
        with pytest.raises(ValueError):
            normalize_id(bad)
    assert header_relpath("1234") == "EMD-1234/header/emd-1234.xml"
    assert header_relpaths("emd_1234") == ("EMD-1234/header/emd-1234.xml",
                                           "EMD-1234/header/emd-1234-v30.xml")
    # surplus leading zeros are dropped; four digits are kept
    assert normalize_id("EMD-00552") == normalize_id("0552") == "EMD-0552"
    assert normalize_id("emd-012345") == "EMD-12345" and normalize_id("EMD-0001") == "EMD-0001"
    assert header_relpath("EMD-00552") == "EMD-0552/header/emd-0552.xml"
    assert entry_relpath("1234", "other", "emd_1234_half_map_1.map.gz") == \
        "EMD-1234/other/emd_1234_half_map_1.map.gz"
    with pytest.raises(ValueError, match="unsafe"):
        entry_relpath("1234", "other", "../x")


# ----------------------------------------------------------------------------- real headers

def _real(name: str, **options):
    return read_header(REAL_HEADERS / name, require_half_maps=False, require_mask=False,
                       **options)


def test_real_header_emd_1001_primary_mask_is_msk_1():
    """EMD-1001 lists ``msk_26`` first; the primary mask is ``msk_1``."""
    h = _real("emd-1001.xml", emdb_id="1001")
    assert (h.emdb_id, h.method, h.resolution, h.release_date) == (
        "EMD-1001", "tomography", 40.0, date(2002, 6, 20))
    assert h.mask_files[:2] == ("emd_1001_msk_26.map", "emd_1001_msk_1.map")
    mask = choose_mask(h)
    assert mask.file == "emd_1001_msk_1.map"
    assert mask.relpath == "EMD-1001/masks/emd_1001_msk_1.map"
    assert mask.dimensions == (32, 30, 36) and mask.pixel_spacing == (15.466666,) * 3
    assert h.fitted_pdbs[:2] == ("1m8q", "1mvw") and len(h.fitted_pdbs) == 11
    assert h.map.relpath == "EMD-1001/map/emd_1001.map.gz"
    assert h.dimensions == (600, 600, 30) and h.origin == (0, 0, -15)
    assert h.axis_order == ("X", "Y", "Z") and h.pixel_spacing == (15.4667,) * 3
    assert h.contour_level == pytest.approx(81.2)
    # an older header: 600*600*30 floats and the 1024-byte header, in KiB rounded up
    assert h.map.size_kbytes == 42189 == -(-(600 * 600 * 30 * 4 + 1024) // 1024)
    assert h.half_maps == () and choose_half_maps(h) == ()
    with pytest.raises(HeaderError, match="EMD-1001.*0 half-map"):
        read_header(REAL_HEADERS / "emd-1001.xml")


def test_real_header_emd_0001_mask_named_in_mask_details():
    """EMD-0001's segmentation names its file only inside ``<mask_details>``."""
    h = _real("emd-0001.xml", emdb_id="EMD-0001")
    assert (h.emdb_id, h.method, h.resolution, h.release_date) == (
        "EMD-0001", "singleParticle", 3.4, date(2018, 6, 6))
    assert h.fitted_pdbs == ("6gh5",)
    assert h.mask_files == ("emd_0001.map.gz",)
    assert h.masks[0].relpath == "EMD-0001/masks/emd_0001.map.gz"
    assert h.masks[0].dimensions == (256, 256, 256) and h.masks[0].size_kbytes == 600
    assert h.pixel_spacing == (1.06, 1.06, 1.06) and h.contour_level == 0.018
    # size_kbytes: the uncompressed file, 256³ floats and the header, in kB of 1000 bytes
    assert h.map.size_kbytes == 67109 == (256 ** 3 * 4 + 1024) // 1000
    assert read_header(REAL_HEADERS / "emd-0001.xml", require_half_maps=False).masks == h.masks


def test_real_header_emd_13682_half_maps_listed_second_first():
    h = _real("emd-13682.xml", emdb_id="13682")
    assert (h.emdb_id, h.method, h.resolution, h.release_date) == (
        "EMD-13682", "subtomogramAveraging", 18.5, None)
    assert h.half_map_files == ("emd_13682_half_map_2.map.gz", "emd_13682_half_map_1.map.gz")
    assert [m.file for m in choose_half_maps(h)] == ["emd_13682_half_map_1.map.gz",
                                                     "emd_13682_half_map_2.map.gz"]
    assert [m.relpath for m in choose_half_maps(h)] == [
        "EMD-13682/other/emd_13682_half_map_1.map.gz",
        "EMD-13682/other/emd_13682_half_map_2.map.gz"]
    assert h.half_maps[0].origin == (-50, -50, -50) and h.half_maps[0].pixel_spacing == (4.29,) * 3
    assert h.map.size_kbytes == 4001 == (100 ** 3 * 4 + 1024) // 1000
    assert h.masks == () and choose_mask(h) is None
    with pytest.raises(HeaderError, match="EMD-13682.*no mask"):
        read_header(REAL_HEADERS / "emd-13682.xml")


def test_segmentation_without_any_file_name_is_skipped():
    text = _minimal(mask_files=("emd_1234_msk_1.map", "emd_1234_msk_2.map")).replace(
        "<file>emd_1234_msk_1.map</file>", "", 1)
    assert parse_header(text).mask_files == ("emd_1234_msk_2.map",)
    only = _minimal().replace("<file>emd_1234_msk_1.map</file>", "", 1)
    assert parse_header(only, require_mask=False).masks == ()
    with pytest.raises(HeaderError, match="no mask"):
        parse_header(only)


def test_choose_mask_takes_msk_1_else_the_lowest_number():
    def masks(*names):
        return parse_header(_minimal(mask_files=names))

    assert choose_mask(masks("emd_1234_msk_3.map", "emd_1234_msk_1.map")).file == \
        "emd_1234_msk_1.map"
    assert choose_mask(masks("emd_1234_msk_12.map", "emd_1234_msk_2.map")).file == \
        "emd_1234_msk_2.map"
    assert choose_mask(masks("custom.map", "emd_1234_msk_7.map")).file == "emd_1234_msk_7.map"
    assert choose_mask(masks("b.map", "a.map")).file == "b.map"      # no numbers: header order
    assert choose_mask(parse_header(_minimal(mask_files=()), require_mask=False)) is None
