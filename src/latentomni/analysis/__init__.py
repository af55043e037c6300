"""Attention analysis: the AV token attention ratio of Fig. 1 (:mod:`.attention`), heatmaps on the video
and audio timelines of App. C (:mod:`.heatmaps`), the per-task bar chart (:mod:`.charts`) and the
``latentomni analyze`` command (:mod:`.cli`). Nothing is imported here, so the CLI stays cheap to load."""
