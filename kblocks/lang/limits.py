"""Documented size limits, checked before any Keras object is made (docs/language.md, "Limits").

They stop absurd input (``*100000``, pasted megabytes, a 10^12-element tensor) with a clear error
instead of exhausting memory. Each is a module constant so tests and users can read it.
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
MAX_ACTIVATION_ELEMENTS = 2_000_000_000  #: elements of any one tensor (per image; also a layer's weights)
MAX_PARAMS = 20_000_000_000     #: parameters of the whole model
