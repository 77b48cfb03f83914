/** The scenario model: the ground truth a simulated day is generated from and checked against. */

export interface CardSpec {
  /** Raw UID (uppercase hex, 4 or 7 bytes). Never logged; only the simulator and the reader see it. */
  uid: string;
  /** Pseudonymised reference (protocol pseudonymiseCard with the fleet key). */
  cardRef: string;
}

export interface Home {
  readerId: string;
  clientRef: string;
  /** Position in km, for travel times. */
  x: number;
  y: number;
  /** The reader next door (same landing): where a wrong-reader tap lands. */
  neighbour: string;
}

export interface Staff {
  staffRef: string;
  card: CardSpec;
  shiftStartMs: number;
  shiftEndMs: number;
  /** Staff of one team walk the same route (double staffing for lifts). */
  teamId: string;
}

/**
 * What the worker meant. The feedback the device should give follows from it:
 * start → visit-started, stop → visit-ended, repeat → repeat, rejected → rejected (or, when the
 * device has no allow-list, start/stop for an unknown card: the gateway flags it).
 */
export type Intent = 'start' | 'stop' | 'repeat' | 'wrong-reader';

export type HumanError =
  'forgotten-stop' | 'double-tap' | 'wrong-reader' | 'unknown-card' | 'card-left-on-reader' | 'bounce';

export type ActionKind = 'tap' | 'present' | 'remove' | 'bounce';

export interface Action {
  atMs: number;
  readerId: string;
  kind: ActionKind;
  uid: string;
  cardRef: string;
  staffRef: string | null;
  /** For tap/present/bounce: what the worker meant. */
  intent: Intent | null;
  /** The truth visit this action belongs to. */
  visitKey: string;
}

export type VisitKind = 'normal' | 'double' | 'forgotten-stop' | 'wrong-reader' | 'unknown-card';

export interface TruthVisit {
  key: string;
  readerId: string;
  clientRef: string;
  staffRef: string | null;
  cardRef: string;
  startMs: number;
  /** null: never tapped out (forgotten stop, wrong reader). */
  endMs: number | null;
  kind: VisitKind;
  errors: HumanError[];
  /** Visits of one double-staffed call share this. */
  groupKey: string | null;
}

export interface ScenarioParams {
  seed: number;
  readers: number;
  staff: number;
  hours: number;
  /** Virtual wall time at the start of the day (ms since epoch). */
  startMs: number;
  /** Device visit rules the day is planned against. */
  repeatWindowMs: number;
  maxOpenMs: number;
  /** Probabilities of human errors per visit. */
  errorRates: Partial<Record<HumanError, number>>;
  /** Share of staff working in pairs (double staffing). */
  pairShare: number;
}

export interface Scenario {
  params: ScenarioParams;
  fleetKey: string;
  endMs: number;
  homes: Home[];
  staff: Staff[];
  unknownCards: CardSpec[];
  actions: Action[];
  truth: TruthVisit[];
}
