"""``python -m benchmark.translate``: folders with broken files, videos, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.mapping.vae import ConvVAE, VAEConfig, load_vae, save_vae
from benchmark.translate import fit, main


@pytest.fixture
def vae_dir(tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "run"
    save_vae(ConvVAE(VAEConfig(resolution=32)), run / "model.pt")
    return run


def _photos(folder, n=5):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        size = (80 + 10 * i, 60)  # not square, not the model's size
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"img{i}.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    return folder


def test_folder_with_one_broken_file(tmp_path, vae_dir, capsys):
    photos = _photos(tmp_path / "photos")
    out = tmp_path / "out"
    assert (
        main(
            ["--vae", str(vae_dir), "--input", str(photos), "--out", str(out), "--device", "cpu", "--precision", "fp32"]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "skipping broken.png" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "translated 5 images (1 skipped)" in captured.out and "images/s" in captured.out
    recons = sorted((out / "recon").glob("*.png"))
    assert [p.stem for p in recons] == [f"img{i}" for i in range(5)]
    with Image.open(recons[0]) as image:
        assert image.size == (32, 32) and image.mode == "RGB"
    summary = json.loads((out / "translate.json").read_text())
    assert summary["translated"] == 5 and summary["skipped"] == ["broken.png"] and summary["images_per_s"] > 0
    with Image.open(out / "sheet.png") as sheet:
        assert sheet.width > 4 * 32
    # the written reconstruction is the VAE's reconstruction of the centre-cropped input
    with Image.open(photos / "img0.jpg") as image:
        x = torch.from_numpy(fit(image, 32)).permute(2, 0, 1)[None].float() / 255
    expected = (load_vae(vae_dir).reconstruct(x) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(recons[0])), expected)


def test_video_frames(tmp_path, vae_dir):
    av = pytest.importorskip("av")
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), 20 * i, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out"
    assert (
        main(["--vae", str(vae_dir), "--input", str(video), "--out", str(out), "--every", "4", "--device", "cpu"]) == 0
    )
    assert sorted(p.stem for p in (out / "recon").glob("*.png")) == [f"clip_frame{i:06d}" for i in (0, 4, 8)]


def test_fit_crops_the_centre():
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[:, 20:60] = 255  # the centre square is white, the sides black
    square = fit(Image.fromarray(image), 16)
    assert square.shape == (16, 16, 3) and square[:, 1:-1].min() == 255 and square.min() > 128  # edges: filter bleed


@pytest.mark.parametrize("case", ["no-vae", "no-input", "nothing-readable"])
def test_bad_input(tmp_path, vae_dir, capsys, case):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    vae = tmp_path / "missing" if case == "no-vae" else vae_dir
    source = tmp_path / "missing" if case == "no-input" else empty
    code = main(["--vae", str(vae), "--input", str(source), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert code == (1 if case == "nothing-readable" else 2)
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error:")
