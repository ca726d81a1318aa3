"""Callbacks shared by the demo, the benchmarks and the tuning code."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback


class EpisodeReturnRecorder(BaseCallback):
    """Records ``(timestep, return, length)`` of every finished training episode (from the Monitor wrapper's info)."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[tuple[int, float, int]] = []

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            episode = info.get("episode")
            if episode is not None:
                self.episodes.append((self.num_timesteps, float(episode["r"]), int(episode["l"])))
        return True
