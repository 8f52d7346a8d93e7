"""The local model: finding and building the checkpoint (`models`), the CUDA machine (`cuda`), loading and
decoding (`engine`), grammars (`constrained`), stop rules (`stops`), chat templates (`templates`) and the
checkpoints' own tool-call formats (`callformats`). `backends.local` asks through it; `serve`, `train`
and `infer` use the same modules, so one request gives the same text wherever it is made. Nothing here is
imported until a command needs the local model."""
