"""fastcnn.training: the trainer (the loop), its data handling and the execution plan.

``trainer.Trainer`` (compile/fit/evaluate/predict, mixed into the models), ``data`` (input
checks, batches), ``plan`` (a model's graph as steps; fusion rules), ``fused`` (fused steps).
"""
