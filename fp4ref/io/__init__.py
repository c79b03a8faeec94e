"""Files: UQFF (:mod:`.uqff`), safetensors checkpoints (:mod:`.checkpoints`) and the
safetensors container both build on (:mod:`.safetensors_file`)."""
