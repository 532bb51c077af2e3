"""diffsys.systems.render.load_mesh / save_mesh: OBJ and PLY through trimesh (the ``mesh``
extra), checked arrays, clear errors for malformed files."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from diffsys.systems import render as R


@pytest.fixture(autouse=True)
def _trimesh(request):
    if request.node.name != "test_without_trimesh_the_error_names_the_extra":
        pytest.importorskip("trimesh", reason="the 'mesh' extra (trimesh) is not installed")

# A unit square in z = 0 (one quad, split by trimesh into two triangles) and a tetrahedron
# apex; OBJ indices are 1-based, negative ones count back from the last vertex.
OBJ = """# written by the test
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 0.5 0.5 1.25
f 1 2 3 4
f 1 2 5
f -4 -3 -1
"""

PLY = """ply
format ascii 1.0
comment three vertices with normals and colours
element vertex 3
property float x
property float y
property float z
property float nx
property float ny
property float nz
property uchar red
property uchar green
property uchar blue
element face 1
property list uchar int vertex_indices
end_header
0 0 0 0 0 1 255 0 0
2 0 0 0 0 1 0 255 0
0 3 0 0 0 1 0 0 51
3 0 1 2
"""


def test_obj_written_by_hand_reads_as_triangles(tmp_path):
    path = tmp_path / "square.obj"
    path.write_text(OBJ)
    mesh = R.load_mesh(path)
    np.testing.assert_array_equal(
        mesh.vertices, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1.25]]
    )
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64
    assert mesh.faces.shape == (4, 3)
    # the quad is covered by two triangles over its four corners, the rest kept as written
    quad = {tuple(sorted(f)) for f in mesh.faces[:2].tolist()}
    assert set().union(*quad) == {0, 1, 2, 3} and len(quad) == 2
    np.testing.assert_array_equal(mesh.faces[2:], [[0, 1, 4], [1, 2, 4]])
    assert mesh.colors is None and mesh.normals.shape == (5, 3)


def test_ply_normals_and_colours(tmp_path):
    path = tmp_path / "tri.ply"
    path.write_text(PLY)
    mesh = R.load_mesh(path)
    np.testing.assert_array_equal(mesh.vertices, [[0, 0, 0], [2, 0, 0], [0, 3, 0]])
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2]])
    np.testing.assert_allclose(mesh.normals, [[0, 0, 1]] * 3)
    np.testing.assert_allclose(mesh.colors, [[1, 0, 0], [0, 1, 0], [0, 0, 0.2]])


@pytest.mark.parametrize("suffix", ["obj", "ply"])
def test_round_trip_renders_the_same(tmp_path, suffix):
    v, f = R.icosphere(1)
    colors = 0.5 + 0.5 * v
    path = tmp_path / f"ball.{suffix}"
    R.save_mesh(path, v, f, colors)
    mesh = R.load_mesh(path)
    np.testing.assert_array_equal(mesh.faces, f)
    # OBJ keeps 17 digits (exact); PLY as trimesh writes it stores float32
    np.testing.assert_allclose(mesh.vertices, v, rtol=0, atol=0 if suffix == "obj" else 1e-7)
    np.testing.assert_allclose(mesh.colors, np.round(colors * 255) / 255, atol=1e-12)
    cam = R.look_at((0.3, 0.2, 3.0), focal=12.0)
    a = R.rasterize_mesh(v, f, cam, (12, 12), mesh.colors, temperature=0.5)
    b = R.rasterize_mesh(mesh.vertices, mesh.faces, cam, (12, 12), mesh.colors, temperature=0.5)
    np.testing.assert_allclose(b, a, atol=1e-5 if suffix == "ply" else 0)


HOSTILE = {
    "garbage.ply": ("not a ply file at all\n", "could not read it as PLY"),
    "truncated.ply": (
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
        "property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
        "end_header\n0 0 0\n1 0\n",
        "could not read it as PLY",
    ),
    "huge_count.ply": (
        "ply\nformat binary_little_endian 1.0\nelement vertex 999999999999\n"
        "property double x\nproperty double y\nproperty double z\nelement face 1\n"
        "property list uchar int vertex_indices\nend_header\n",
        "could not read it as PLY",
    ),
    "out_of_range.obj": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "could not read it as OBJ"),
    "garbage.obj": ("hello world\n", "no triangles"),
    "empty.obj": ("", "no triangles"),
    "nan.obj": ("v 0 0 nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "1 non-finite vertices .rows .0.."),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_malformed_files_give_a_clear_error(tmp_path, name):
    text, message = HOSTILE[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        R.load_mesh(path)
    assert name in str(info.value)  # the error names the file


def test_missing_file_and_missing_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.obj"):
        R.load_mesh(tmp_path / "nothing.obj")
    path = tmp_path / "mesh"
    path.write_text(OBJ)
    with pytest.raises(ValueError, match="file_type='obj'"):
        R.load_mesh(path)
    assert R.load_mesh(path, file_type="obj").faces.shape == (4, 3)


def test_save_checks_its_arrays(tmp_path):
    v, f = R.box()
    with pytest.raises(ValueError, match="face indices outside 0..7"):
        R.save_mesh(tmp_path / "a.obj", v, f + 1)
    with pytest.raises(ValueError, match="colors .3, 3., expected .8, 3."):
        R.save_mesh(tmp_path / "a.obj", v, f, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        R.save_mesh(tmp_path / "a.obj", v * np.nan, f)
    assert not (tmp_path / "a.obj").exists()


def test_without_trimesh_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "trimesh", None)  # import trimesh now fails
    with pytest.raises(ImportError, match=r"'mesh' extra .pip install 'diffsys\[mesh\]'"):
        R.load_mesh(tmp_path / "a.obj")
    with pytest.raises(ImportError, match="'mesh' extra"):
        R.save_mesh(tmp_path / "a.obj", *R.box())
