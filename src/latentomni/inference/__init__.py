"""Running a trained LatentOmni model: the predictor (``predictor``), its settings (``settings``) and the
``latentomni infer`` command (``cli``). Import the submodule you need: only ``predictor`` loads torch."""
