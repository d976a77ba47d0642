"""CPM-Bee model, objective, packing, mixture loader and the DeepSpeed ZeRO-3 train loop."""
