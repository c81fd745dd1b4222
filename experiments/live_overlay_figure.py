"""One frame of the overlay video, as a PNG for the README (docs/figures/live_overlay.png).

    python experiments/live_overlay_figure.py --workdir=runs/gasfastrack \\
        --input=../shared/data/gasfastrack/clips/p6_isokinetic030_01_push_01.mp4 --frame=110 \\
        --png=docs/figures/live_overlay.png

The overlay is drawn by the renderer `live --overlay` and `predict --overlay` share, from
`predict`'s estimates of the clip (the same numbers live gives, tests/test_live.py), and frame
`--frame` is taken from the decoded video.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import av
from absl import flags

from muscle_jax import cli, predict

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("workdir", "runs/gasfastrack", "A trained run.")
    flags.DEFINE_string("input", "../shared/data/gasfastrack/clips/p6_isokinetic030_01_push_01.mp4", "The recording.")
    flags.DEFINE_integer("frame", 110, "Which decoded frame of the overlay to keep.")
    flags.DEFINE_string("png", "docs/figures/live_overlay.png", "Where to write it.")


def main(argv: list[str]) -> None:
    del argv
    from muscle_jax import ensemble as ensemble_lib

    ensemble = ensemble_lib.load(FLAGS.workdir)
    prediction = predict.predict_recording(ensemble, FLAGS.input)
    with tempfile.TemporaryDirectory() as tmp:
        video_path = Path(tmp) / "overlay.mp4"
        predict.write_overlay(video_path, ensemble, FLAGS.input, prediction)
        with av.open(str(video_path)) as video:
            frame = next((f for k, f in enumerate(video.decode(video=0)) if k == FLAGS.frame), None)
            if frame is None:
                raise ValueError(f"{FLAGS.input}: the overlay has no frame {FLAGS.frame}")
            Path(FLAGS.png).parent.mkdir(parents=True, exist_ok=True)
            frame.to_image().save(FLAGS.png)
    print(f"frame {FLAGS.frame} of the overlay of {FLAGS.input} → {FLAGS.png}")


if __name__ == "__main__":
    cli.run(main, define_flags)
