"""Networks: the exact quantizers (``quant``), the log-weight layer (``layers``), the families (``vgg``,
``resnet``), batch-norm folding (``fold``) and the registry that names and builds them (``registry``)."""
