"""ImageNet-D (Rusak et al., TMLR 2022): its 164 classes and the map from ImageNet's 1000.

ImageNet-D is DomainNet's images in the classes that match ImageNet's, re-foldered by the
authors' ``map_files.py`` (bethgelab/robustness ``examples/imagenet_d``; ambiguous DomainNet
classes merged: ``cell_phone`` into ``telephone``, ``mug`` into ``cup``, ...). The toolkit
(github.com/mariodoebler/test-time-adaptation commit 8b2ed63) releases its image lists
(``classification/datasets/imagenet_d_lists/<domain>_list.txt``: ``<domain>/<class>/<file>
<label>``, the label the class folder's place among the 164 in sorted order, the same in
every domain) and the map its evaluation scores with (``imagenet_subsets.py``
``IMAGENET_D_MAPPING``: ImageNet class -> ImageNet-D class, 464 of them; -1 for the 536
ImageNet classes of none; several ImageNet classes to one ImageNet-D class, e.g. the 118
dog breeds to ``dog``). ``get_accuracy`` (``utils/eval_utils.py``) scores
``mapping_vector[argmax of the 1000 logits]`` against the label; the model and every
method see the 1000-way logits.

:data:`IMAGENET_D_CLASSES` are the class folders in label order, read from the toolkit's
lists; :data:`IMAGENET_D_FROM_1K` its ``IMAGENET_D_MAPPING`` values in ImageNet order
(``tests/test_imagenet_d.py`` compares both with the toolkit's files).
"""

from __future__ import annotations

IMAGENET_D_CLASSES: tuple[str, ...] = tuple(
    """
    aircraft_carrier airplane ambulance ant backpack banana barn baseball basket basketball
    bathtub bear bed bee belt bench bicycle binoculars bird book bottlecap bowtie bridge
    broccoli broom bucket bus butterfly camel camera candle cannon canoe car castle cat
    cello chair church clock compass computer crab crocodile cruise_ship cup dishwasher dog
    door dragon drill duck dumbbell ear elephant envelope eraser fan feather fence flamingo
    floor_lamp frog frying_pan golf_club guitar hammer harp hat hedgehog helmet hockey_puck
    horse hot_air_balloon hot_dog hourglass house ice_cream kangaroo knee knife lantern
    lighter lighthouse lion lipstick lobster mailbox microphone microwave monkey mosquito
    mushroom nail necklace ocean oven owl paintbrush panda parachute penguin piano pig
    pillow pineapple pizza potato purse rabbit radio remote_control rifle saw saxophone
    scorpion screwdriver sea_turtle shark sheep shoe shovel sleeping_bag snail snake snorkel
    soccer_ball sock speedboat spider spoon squirrel stethoscope stop_sign stove strawberry
    submarine swing_set syringe t-shirt table teapot teddy-bear telephone television
    tennis_racquet tent tiger toaster toilet tractor traffic_light train trombone truck
    trumpet umbrella vase violin washing_machine whale wheel wine_bottle zebra
    """.split()
)

#: ImageNet class k -> ImageNet-D class (an index of :data:`IMAGENET_D_CLASSES`), -1: none.
IMAGENET_D_FROM_1K: tuple[int, ...] = tuple(
    int(k)
    for k in """
    -1 -1 118 118 118 -1 -1 18 18 18 18 18 18 18 18 18 18 18 18 18 18 18 18 18 97 -1 -1 -1
    -1 -1 62 62 62 117 117 117 117 117 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 49 43 -1 -1 124 124 124
    124 124 124 124 124 124 124 124 124 124 124 124 124 124 -1 129 115 129 129 129 129 129
    129 129 -1 18 18 18 18 18 18 18 18 18 18 18 18 18 18 18 18 18 18 18 18 18 -1 -1 51 78 11
    -1 -1 -1 -1 -1 -1 -1 123 -1 -1 -1 -1 42 42 42 42 86 86 -1 42 -1 -1 -1 -1 60 -1 -1 -1 -1
    -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 101 -1 160 160 160 -1 47 47 47 47 47 47 47 47 47 47 47 47
    47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47
    47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47
    47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47
    47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 47 -1 -1 -1 -1 -1 -1 47 -1 -1 -1
    -1 -1 35 35 35 35 35 84 -1 -1 -1 -1 84 147 -1 11 11 11 11 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1
    -1 13 3 -1 -1 -1 -1 -1 -1 -1 91 91 27 27 27 27 27 27 27 -1 -1 -1 109 109 109 -1 69 131
    -1 -1 -1 -1 163 103 103 103 -1 -1 -1 -1 -1 119 -1 -1 -1 -1 28 -1 -1 -1 -1 -1 -1 -1 -1 -1
    -1 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 90 54 54 99 99 -1 -1 -1 -1
    -1 -1 -1 -1 -1 -1 -1 -1 -1 65 0 1 1 -1 2 -1 39 76 -1 -1 112 4 -1 -1 73 -1 -1 -1 -1 -1 37
    -1 6 -1 -1 -1 7 9 -1 -1 -1 -1 10 33 83 -1 -1 162 -1 -1 -1 16 -1 -1 17 -1 -1 -1 -1 -1 -1
    -1 20 -1 21 -1 -1 -1 -1 24 25 -1 -1 152 -1 -1 -1 30 31 32 -1 -1 33 -1 -1 -1 161 -1 -1 -1
    34 -1 -1 36 143 -1 59 -1 113 -1 -1 -1 -1 -1 38 76 -1 -1 -1 -1 -1 -1 -1 -1 -1 41 -1 44 -1
    162 155 -1 68 -1 -1 70 -1 -1 -1 -1 -1 -1 -1 -1 41 143 -1 39 -1 140 -1 46 -1 -1 47 -1 -1
    -1 -1 -1 52 96 57 65 -1 -1 55 -1 -1 58 -1 -1 154 -1 -1 -1 37 70 -1 -1 -1 -1 33 -1 63 -1
    154 70 -1 -1 -1 64 64 -1 -1 -1 102 -1 -1 -1 -1 -1 -1 -1 66 -1 -1 41 -1 -1 67 67 -1 -1 -1
    -1 -1 -1 -1 -1 72 75 -1 -1 81 -1 -1 139 -1 -1 -1 -1 79 -1 -1 -1 61 41 -1 -1 80 -1 -1 82
    -1 95 85 -1 -1 -1 -1 -1 40 -1 87 -1 -1 -1 -1 -1 -1 -1 -1 -1 45 -1 -1 88 89 -1 -1 26 -1
    -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 91 -1 16 146 41 -1 -1 -1 93 -1 94 -1 41 -1 -1 107
    -1 -1 -1 -1 -1 -1 -1 -1 -1 161 -1 98 -1 -1 -1 -1 100 -1 15 -1 33 -1 -1 -1 -1 -1 -1 -1 -1
    -1 -1 59 154 -1 103 162 104 -1 -1 44 -1 -1 -1 -1 -1 -1 -1 29 -1 33 -1 140 162 -1 161 50
    -1 -1 76 -1 -1 71 -1 108 -1 -1 33 145 -1 110 110 -1 -1 -1 29 -1 111 76 -1 112 37 -1 56
    -1 -1 120 -1 -1 -1 -1 -1 114 -1 -1 26 -1 -1 -1 -1 116 14 -1 -1 120 -1 8 -1 121 -1 -1 -1
    -1 122 -1 48 -1 125 -1 -1 -1 126 127 -1 -1 -1 -1 -1 -1 -1 128 129 -1 33 -1 -1 -1 22 -1
    132 -1 -1 -1 134 -1 33 -1 12 -1 136 -1 -1 -1 -1 -1 22 -1 -1 -1 137 -1 138 61 -1 -1 141
    142 144 145 -1 -1 -1 -1 -1 -1 148 -1 149 -1 -1 154 -1 150 154 -1 -1 -1 -1 -1 -1 26 153
    -1 -1 -1 156 -1 102 -1 157 -1 -1 -1 -1 -1 158 -1 -1 39 -1 -1 1 -1 159 162 -1 -1 -1 -1 -1
    -1 -1 -1 162 -1 -1 130 -1 59 -1 -1 -1 -1 19 -1 133 151 19 -1 -1 -1 -1 74 -1 77 77 -1 -1
    -1 -1 74 107 -1 23 -1 -1 -1 -1 -1 -1 -1 -1 -1 92 -1 135 -1 -1 -1 105 5 -1 -1 -1 -1 -1 -1
    -1 -1 106 -1 -1 162 -1 45 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 7 -1 -1 -1 -1 -1 -1 -1 -1
    72 -1 -1 -1 -1 -1 -1 -1 53 149
    """.split()
)

__all__ = ["IMAGENET_D_CLASSES", "IMAGENET_D_FROM_1K"]
