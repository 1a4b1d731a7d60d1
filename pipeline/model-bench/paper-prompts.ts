/**
 * The `paper` bench profile's fixed prompt set: the engine authors report input length 64
 * (README "Evaluation", paper Fig. 18) with "the same set of prompts" for every system. Each
 * prompt here is about 64 LLaMA tokens of plain English, so every engine and host sees the same
 * prompt work; measured runs take them in turn.
 */
export const PAPER_PROMPTS: readonly string[] = [
  "The history of the printing press begins in the fifteenth century, when a goldsmith in Mainz combined movable metal type, oil-based ink and a wooden screw press. Within fifty years presses were working in more than two hundred European cities, and the price of books fell sharply. Describe what changed next",
  "A small coastal town depends on fishing, but the catch has been falling for ten years while tourism slowly grows. The town council must decide whether to spend its limited budget on a new harbour for the fishing fleet or on a promenade and visitor centre. Write the arguments for each option",
  "Photosynthesis converts light energy into chemical energy stored in sugars. In the light-dependent reactions, water is split and oxygen is released, while the Calvin cycle uses carbon dioxide to build glucose. Explain step by step how these two stages depend on each other inside the chloroplast of a leaf",
  "You are planning a three-day hiking trip in the mountains in early autumn. The weather can change quickly, nights are cold, and there is no mobile coverage on most of the route. List what to pack, how to plan each day, and what to do if someone in the group is injured far from help",
];
