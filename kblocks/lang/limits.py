"""Documented size limits, checked before any Keras object is made (docs/language.md, "Limits").

They stop absurd input (``*100000``, pasted megabytes, a 10^12-element tensor) with a clear error
instead of exhausting memory. Each is a module constant so tests and users can read it.

The parameter and weight limits count every weight a layer makes: keywords that would make weights
the analysis does not count (``lora_rank``, ``renorm``, ``quantization_config``...) are refused
(:data:`kblocks.lang.keras_keywords.REFUSED_KEYWORDS`), so the count is Keras' ``count_params()``.
"""
MAX_TEXT_CHARS = 100_000        #: characters of architecture text
MAX_NESTING = 64                #: depth of nested brackets ( [ {; also of nesting counted through
                                #: named blocks, where each bracket, *N, ? and @block adds a level
MAX_REPEAT = 10_000             #: a single repetition count X*N
MAX_LAYERS = 10_000             #: layers after expansion (repetitions and blocks unrolled)
MAX_REPEAT_PRODUCT = 10_000     #: copies of one item made by the repetitions around it (*N inside *M)
MAX_EXPANDED_ITEMS = 100_000    #: items expanded in all (layers, groups, SKIPs, block calls)
MAX_INT = 2_147_483_647         #: any whole-number argument (Keras sizes are 32-bit)
MAX_BLOCK_DEPTH = 32            #: nested named-block calls
MAX_ACTIVATION_ELEMENTS = 2_000_000_000  #: elements of the input or any layer output (per image)
#: The weight limits are set by memory (issue 20): what they admit fits a documented figure.
BYTES_PER_WEIGHT = 4            #: float32, as Keras keeps weights by default
MAX_WEIGHT_ELEMENTS = 1_000_000_000  #: all the weights one layer makes: at most 4 GB in float32
MAX_PARAMS = 4_000_000_000      #: parameters of the whole model: its weights at most 16 GB in float32
#: (training with Adam holds about 4x the weights: weights, gradients and two moments, 64 GB)
